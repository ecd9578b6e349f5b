// An export bundle (docs/auditor.md): a directory an auditor can take away and check offline — the
// records exactly as stored, the CSV or recordings made from them, and a manifest of what it holds.
import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { collectorAlertEntries, csvHeader, csvRow, CSV_LINE_BREAK, jsonLine, recordEntry, type RecordEntry } from '../export.ts';
import { SHELL_TOOL } from '../protocol/index.ts';
import type { RecordFilter, Store } from '../store/types.ts';
import { castOf, sessionFileName } from './cast.ts';
import { rangesText } from '../sessions.ts';
import {
  HeadTracker, MANIFEST_FILE, manifestDigest, type BundleFilter, type ExportFormat, type FileEntry, type Manifest, type SessionEntry, type StreamHead,
} from './manifest.ts';

export class ExportError extends Error {
  readonly code: 'EXPORT_DIR_NOT_EMPTY' | 'EXPORT_NO_SESSION' | 'EXPORT_BAD_RECORD';

  constructor(code: ExportError['code'], message: string) {
    super(message);
    this.name = 'ExportError';
    this.code = code;
  }
}

export interface BundleOptions {
  /** Created if absent; must be empty if present, so the bundle holds nothing but what it lists. */
  dir: string;
  format: ExportFormat;
  filter?: BundleFilter;
  collectorVersion: string;
  /** Told the number of records written so far, every PROGRESS_EVERY records and at the end. */
  onProgress?: (records: number) => void;
  now?: () => Date;
}

export interface BundleResult {
  manifest: Manifest;
  /** What the auditor must be told: sessions whose recording lacks chunks, or that have no end yet. */
  warnings: string[];
}

export const RECORDS_FILE = 'records.jsonl';
export const COLLECTOR_ALERTS_FILE = 'collector-alerts.jsonl';
export const CSV_FILE = 'records.csv';
export const SESSIONS_DIR = 'sessions';

const PROGRESS_EVERY = 1_000;
/** Bytes gathered before a write: few system calls, bounded memory. */
const WRITE_CHUNK_CHARS = 1 << 20;

/**
 * Writes the bundle: for `jsonl`, records.jsonl and collector-alerts.jsonl; for `csv`, those and
 * records.csv (the same records, and the collector alerts, as rows); for `asciicast`, per recorded shell
 * session in the filter, sessions/<id>.jsonl (all its records) and sessions/<id>.cast (its recording,
 * made from those records). Each file comes from one read of the store, so what a file is made from is
 * in the bundle. The manifest is written last: a bundle without one is incomplete.
 */
export function writeExportBundle(store: Store, options: BundleOptions): BundleResult {
  const { dir } = options;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const present = readdirSync(dir);
  if (present.length > 0) throw new ExportError('EXPORT_DIR_NOT_EMPTY', `export: ${dir} is not empty (it holds ${present.slice(0, 3).join(', ')}${present.length > 3 ? ', …' : ''}); a bundle goes to a new or empty directory`);

  const opened = new OpenFiles(dir);
  try {
    return writeContents(store, options, opened);
  } finally {
    // Only after a failure part way: the bundle is then left without a manifest, so verify calls it incomplete.
    opened.abandon();
  }
}

function writeContents(store: Store, options: BundleOptions, opened: OpenFiles): BundleResult {
  const { dir, format, filter = {}, collectorVersion, onProgress, now = () => new Date() } = options;
  const files: FileEntry[] = [];
  const streams: StreamHead[] = [];
  const sessions: SessionEntry[] = [];
  const warnings: string[] = [];
  let records = 0;
  let collectorAlerts = 0;
  const progressed = () => {
    if (++records % PROGRESS_EVERY === 0) onProgress?.(records);
  };

  if (format === 'asciicast') {
    const selected = sessionsIn(store, filter);
    mkdirSync(join(dir, SESSIONS_DIR), { mode: 0o700 });
    const usedNames = new Set<string>();
    for (const sessionId of selected) {
      // One read of the session's records: the cast is made from exactly those written beside it.
      const entries: RecordEntry[] = [];
      for (const stored of store.records({ sessionId })) entries.push(recordEntry(stored));
      const name = uniqueName(sessionId, usedNames);
      const recordsPath = `${SESSIONS_DIR}/${name}.jsonl`;
      const castPath = `${SESSIONS_DIR}/${name}.cast`;
      const heads = new HeadTracker(recordsPath);
      const out = opened.create(recordsPath, 'records');
      for (const entry of entries) {
        track(heads, entry);
        out.write(`${jsonLine(entry)}\n`);
        progressed();
      }
      files.push(opened.close(out));
      streams.push(...heads.heads());
      let cast: ReturnType<typeof castOf>;
      try {
        cast = castOf(sessionId, entries);
      } catch (error) {
        throw new ExportError('EXPORT_NO_SESSION', `export: session ${sessionId}: ${(error as Error).message}`);
      }
      const castFile = opened.create(castPath, 'cast');
      castFile.write(cast.cast);
      files.push(opened.close(castFile));
      sessions.push({ id: sessionId, cast: castPath, records: recordsPath, ended: cast.ended, missingChunks: cast.missing });
      if (cast.missingCount > 0) warnings.push(`session ${sessionId}: recording chunks ${rangesText(cast.missing)} (${cast.missingCount} in all) are not in the store (dropped by the agent's buffer or not yet delivered); ${castPath} lacks them`);
      if (!cast.ended) warnings.push(`session ${sessionId} has no end stored yet (live, or its agent has not delivered it): the recording may continue`);
    }
  } else {
    const heads = new HeadTracker(RECORDS_FILE);
    const out = opened.create(RECORDS_FILE, 'records');
    const csv = format === 'csv' ? opened.create(CSV_FILE, 'csv') : undefined;
    csv?.write(`${csvHeader()}${CSV_LINE_BREAK}`);
    for (const stored of store.records(recordFilterOf(filter))) {
      const entry = recordEntry(stored);
      track(heads, entry);
      out.write(`${jsonLine(entry)}\n`);
      csv?.write(`${csvRow(entry)}${CSV_LINE_BREAK}`);
      progressed();
    }
    files.push(opened.close(out));
    streams.push(...heads.heads());
    const alerts = opened.create(COLLECTOR_ALERTS_FILE, 'collector-alerts');
    const window = { ...(filter.since === undefined ? {} : { since: filter.since }), ...(filter.until === undefined ? {} : { until: filter.until }) };
    for (const entry of collectorAlertEntries(store, window)) {
      alerts.write(`${jsonLine(entry)}\n`);
      csv?.write(`${csvRow(entry)}${CSV_LINE_BREAK}`);
      collectorAlerts++;
    }
    files.push(opened.close(alerts));
    if (csv) files.push(opened.close(csv));
  }
  onProgress?.(records);

  const unsigned: Omit<Manifest, 'digest'> = {
    omwatchExport: 1,
    collector: { version: collectorVersion },
    exportedAt: now().toISOString(),
    format,
    filter,
    records,
    collectorAlerts,
    files,
    streams,
    sessions,
  };
  const manifest: Manifest = { ...unsigned, digest: manifestDigest(unsigned) };
  // Written aside and renamed: a manifest is either whole or absent.
  const partial = join(dir, `.${MANIFEST_FILE}.partial`);
  const fd = openSync(partial, 'wx', 0o600);
  try {
    writeFileSync(fd, `${JSON.stringify(manifest, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(partial, join(dir, MANIFEST_FILE));
  syncDir(dir);
  return { manifest, warnings };
}

/** The store filter a bundle's filter reads records with (verify --data reads them again with it). */
export function recordFilterOf(filter: BundleFilter): RecordFilter {
  return {
    ...(filter.since === undefined ? {} : { since: filter.since }),
    ...(filter.until === undefined ? {} : { until: filter.until }),
    ...(filter.hostId === undefined ? {} : { hostId: filter.hostId }),
    ...(filter.sessionId === undefined ? {} : { sessionId: filter.sessionId }),
  };
}

function track(heads: HeadTracker, entry: RecordEntry): void {
  const record = entry.record as { hash?: unknown; prev?: unknown } | null;
  const hash = record?.hash;
  const prev = record?.prev;
  if (typeof hash !== 'string' || typeof prev !== 'string') {
    throw new ExportError('EXPORT_BAD_RECORD', `export: stream ${entry.stream} seq ${entry.seq}: the stored record has no hash or prev; run verify --data`);
  }
  heads.add(entry.agentId, entry.stream, entry.seq, hash, prev);
}

/**
 * The recorded shell sessions the filter selects, by start: the one named by `sessionId`, else those of
 * the host (if given) open at some time in [since, until) — started before `until`, not ended before
 * `since` (an open session has not ended).
 */
function sessionsIn(store: Store, filter: BundleFilter): string[] {
  const found = new Map<string, { start: string; end: number | undefined; hostId: string | null }>();
  const scan: RecordFilter = { category: 'remote_session', ...(filter.sessionId === undefined ? {} : { sessionId: filter.sessionId }) };
  for (const stored of store.records(scan)) {
    const { record } = recordEntry(stored);
    const event = record as { time?: unknown; fields?: Record<string, unknown> };
    const fields = event.fields ?? {};
    const id = fields['SessionId'];
    if (fields['Tool'] !== SHELL_TOOL || typeof id !== 'string') continue;
    const session = found.get(id) ?? { start: '', end: undefined, hostId: stored.hostId };
    if (fields['Action'] === 'start') session.start = typeof fields['StartTime'] === 'string' ? fields['StartTime'] : String(event.time);
    else if (fields['Action'] === 'end' || fields['Action'] === 'refused') session.end = Date.parse(String(event.time));
    found.set(id, session);
  }
  if (filter.sessionId !== undefined && ![...found.values()].some((s) => s.start !== '')) {
    throw new ExportError('EXPORT_NO_SESSION', `export: no recorded shell session ${filter.sessionId} in this store`);
  }
  const since = filter.since === undefined ? -Infinity : Date.parse(filter.since);
  const until = filter.until === undefined ? Infinity : Date.parse(filter.until);
  return [...found]
    // A session whose start is not stored has no recording header: sessionCast cannot rebuild it.
    .filter(([, s]) => s.start !== '' && (filter.hostId === undefined || s.hostId === filter.hostId))
    .filter(([, s]) => Date.parse(s.start) < until && (s.end === undefined || s.end >= since))
    .sort(([a, sa], [b, sb]) => sa.start.localeCompare(sb.start) || a.localeCompare(b))
    .map(([id]) => id);
}

/** Unique even on a file system that ignores case (the bundle may be copied to one). */
function uniqueName(sessionId: string, used: Set<string>): string {
  const hash = (text: string) => createHash('sha256').update(text).digest('hex');
  let name = sessionFileName(sessionId, hash);
  if (used.has(name.toLowerCase())) name = `${name.slice(0, 80)}-${hash(sessionId).slice(0, 16)}`;
  for (let n = 2; used.has(name.toLowerCase()); n++) name = `${sessionFileName(sessionId, hash).slice(0, 80)}-${hash(sessionId).slice(0, 16)}-${n}`;
  used.add(name.toLowerCase());
  return name;
}

/** The bundle's files being written: each closed once whole, all of them closed if the export fails. */
class OpenFiles {
  readonly #dir: string;
  readonly #open = new Set<HashedFile>();

  constructor(dir: string) {
    this.#dir = dir;
  }

  create(path: string, role: FileEntry['role']): HashedFile {
    const file = new HashedFile(this.#dir, path, role);
    this.#open.add(file);
    return file;
  }

  close(file: HashedFile): FileEntry {
    this.#open.delete(file);
    return file.close();
  }

  abandon(): void {
    for (const file of this.#open) file.abandon();
    this.#open.clear();
  }
}

/** A file of the bundle, hashed as it is written (the bytes hashed are the bytes written), synced when closed. */
class HashedFile {
  readonly #path: string;
  readonly #role: FileEntry['role'];
  readonly #fd: number;
  readonly #hash = createHash('sha256');
  #bytes = 0;
  #pending: string[] = [];
  #pendingChars = 0;

  constructor(dir: string, path: string, role: FileEntry['role']) {
    this.#path = path;
    this.#role = role;
    // `wx`: a file already there (another export into the same directory) is an error, never overwritten.
    this.#fd = openSync(join(dir, path), 'wx', 0o600);
  }

  write(text: string): void {
    this.#pending.push(text);
    this.#pendingChars += text.length;
    if (this.#pendingChars >= WRITE_CHUNK_CHARS) this.#flush();
  }

  close(): FileEntry {
    try {
      this.#flush();
      fsyncSync(this.#fd);
    } finally {
      closeSync(this.#fd);
    }
    return { path: this.#path, role: this.#role, sha256: this.#hash.digest('hex'), bytes: this.#bytes };
  }

  /** Closes the file as it is, after a failure elsewhere. */
  abandon(): void {
    closeSync(this.#fd);
  }

  #flush(): void {
    if (this.#pending.length === 0) return;
    const buffer = Buffer.from(this.#pending.join(''), 'utf8');
    this.#pending = [];
    this.#pendingChars = 0;
    this.#hash.update(buffer);
    for (let offset = 0; offset < buffer.length;) offset += writeSync(this.#fd, buffer, offset);
    this.#bytes += buffer.length;
  }
}

/** Makes the manifest's rename durable; a file system that cannot sync a directory is left as it is. */
function syncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Some file systems refuse fsync on a directory; the files themselves are synced.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
