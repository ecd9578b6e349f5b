// `omwatch-collector verify --export DIR` (design.md §6): checks an export bundle offline, from its
// directory alone — each file against the manifest, every record's hash and link, the chain heads, the
// seqs left out, and the CSV and recordings against their records — and names the first altered record;
// with the collector's store at hand (`--data`), also that every record and seq left out is the store's.
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, lstatSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { csvCell, csvHeader, csvValues, CSV_COLUMNS, CSV_LINE_BREAK, jsonLine, type CollectorAlertEntry, type RecordEntry } from '../export.ts';
import { chainHash, GENESIS } from '../protocol/chain.ts';
import type { RecordFilter, Store } from '../store/types.ts';
import { StoreStreamCheck } from './against-store.ts';
import { CSV_FILE, recordFilterOf } from './bundle.ts';
import { castOf, storedView } from './cast.ts';
import { declarationOf, seqsText, undeclared, type Declaration, type MissingRange } from './gaps.ts';
import { MANIFEST_FILE, manifestDigest, ManifestSchema, type FileEntry, type Manifest, type SessionEntry, type StreamHead } from './manifest.ts';
import { rangesText } from '../sessions.ts';

/** Where a bundle differs from what its manifest and its records say, and how. */
export interface ExportProblem {
  /** The file, relative to the bundle. */
  file: string;
  /** 1-based line of the file, when the problem is at one. */
  line?: number;
  stream?: string;
  seq?: number;
  reason: string;
}

export interface ExportVerdict {
  ok: boolean;
  dir: string;
  /** From the manifest, when it could be read. */
  format?: Manifest['format'];
  exportedAt?: string;
  collectorVersion?: string;
  filter?: Manifest['filter'];
  files: number;
  /** The manifest's chain heads: the stream segments whose records were checked. */
  heads: StreamHead[];
  sessions: number;
  /** Records read from the records files. */
  records: number;
  leftOut: LeftOut;
  /** Whether the bundle was also checked against the collector's store (`verify --export DIR --data STORE`). */
  againstStore: boolean;
  /** The first MAX_PROBLEMS problems, in the order found. */
  problems: ExportProblem[];
  problemCount: number;
  /**
   * The manifest, if it was altered (everything else was checked against it); else the first line found
   * wrong in a file whose SHA-256 differs; else such a file; else the first line found wrong (in a bundle
   * whose manifest was re-signed to match an edit). See Problems.first.
   */
  firstAltered?: ExportProblem;
}

/**
 * The ranges of seqs a bundle's streams leave out, and how far verify could tell why. A range is a run of
 * seqs not exported between two exported ones of a stream and, in an export of everything, before its first.
 */
export interface LeftOut {
  ranges: number;
  /** Those a buffer_dropped declaration in the bundle accounts for, its hashes meeting the records on both sides. */
  declared: number;
  /**
   * Those only the bundle's filter can account for: verify cannot see records the export did not take,
   * so offline these rest on the manifest's word (`againstStore` checks them). Always 0 in an export of
   * everything, where a range no declaration accounts for is a problem.
   */
  byFilter: number;
}

export interface VerifyExportOptions {
  /** Told the number of records read so far, every PROGRESS_EVERY records. */
  onProgress?: (records: number) => void;
  /**
   * The collector's store, when at hand: every exported record must then be the store's, and every seq
   * left out outside the filter there or a gap its agent declared.
   */
  store?: Store;
}

const MAX_PROBLEMS = 100;
const PROGRESS_EVERY = 1_000;
const READ_CHUNK_BYTES = 1 << 20;
/** An export writes one level of folders (sessions/); folders deeper than this are reported, not walked. */
const MAX_DEPTH = 4;

export function verifyExport(dir: string, options: VerifyExportOptions = {}): ExportVerdict {
  const problems = new Problems();
  const leftOut: LeftOut = { ranges: 0, declared: 0, byFilter: 0 };
  const verdict = (manifest: Manifest | undefined, records: number): ExportVerdict => {
    const first = problems.first();
    return {
      ok: problems.count === 0,
      dir,
      ...(manifest ? { format: manifest.format, exportedAt: manifest.exportedAt, collectorVersion: manifest.collector.version, filter: manifest.filter } : {}),
      files: manifest?.files.length ?? 0,
      heads: manifest?.streams ?? [],
      sessions: manifest?.sessions.length ?? 0,
      records,
      leftOut,
      againstStore: options.store !== undefined,
      problems: problems.list,
      problemCount: problems.count,
      ...(first ? { firstAltered: first } : {}),
    };
  };

  const manifest = readManifest(dir, problems);
  if (!manifest) return verdict(undefined, 0);

  // Every file: there, a plain file, as many bytes and the same SHA-256 as when exported; nothing added.
  const readable = checkListing(dir, manifest, problems);
  for (const file of manifest.files) {
    if (!readable.has(file.path)) continue;
    const { sha256, bytes } = hashFile(join(dir, file.path));
    if (sha256 !== file.sha256) {
      problems.add({ file: file.path, reason: `SHA-256 ${sha256} differs from the manifest's ${file.sha256} (${bytes} bytes; the manifest says ${file.bytes})` }, { digestOf: file });
    }
  }
  checkReferences(manifest, problems);

  // Then the records themselves, and what was made from them.
  const headsByFile = new Map<string, StreamHead[]>();
  for (const head of manifest.streams) {
    const heads = headsByFile.get(head.file);
    if (heads) heads.push(head);
    else headsByFile.set(head.file, [head]);
  }
  const csvFile = manifest.files.find((f) => f.role === 'csv');
  const csv = csvFile && readable.has(csvFile.path) ? new CsvCheck(join(dir, csvFile.path), csvFile.path, problems) : undefined;
  try {
    csv?.expect(csvHeader().split(','), { file: csvFile!.path, line: 0 });
    let records = 0;
    for (const file of manifest.files.filter((f) => f.role === 'records')) {
      if (!readable.has(file.path)) continue;
      const session = manifest.sessions.find((s) => s.records === file.path);
      const entries: Array<{ entry: RecordEntry; line: number }> = [];
      const read: ReadOf = {
        // An asciicast bundle's records file holds one session's records, whatever the filter.
        everything: manifest.format !== 'asciicast' && Object.keys(manifest.filter).length === 0,
        filter: session ? { sessionId: session.id } : recordFilterOf(manifest.filter),
        leftOut,
        ...(options.store ? { store: options.store } : {}),
      };
      walkRecords(join(dir, file.path), file.path, headsByFile.get(file.path) ?? [], read, problems, (entry, line) => {
        csv?.expect(csvValues(entry), { file: file.path, line, stream: entry.stream, seq: entry.seq });
        if (session) entries.push({ entry, line });
        if (++records % PROGRESS_EVERY === 0) options.onProgress?.(records);
      });
      if (session) checkSession(dir, session, entries, readable, problems);
    }
    let collectorAlerts = 0;
    for (const file of manifest.files.filter((f) => f.role === 'collector-alerts')) {
      if (!readable.has(file.path)) continue;
      walkCollectorAlerts(join(dir, file.path), file.path, problems, (entry, line) => {
        csv?.expect(csvValues(entry), { file: file.path, line });
        collectorAlerts++;
      });
    }
    csv?.finish();
    options.onProgress?.(records);
    // Implied by the checks above unless the manifest itself is off; said only when nothing else was.
    if (problems.count === 0 && (records !== manifest.records || collectorAlerts !== manifest.collectorAlerts)) {
      problems.add({ file: MANIFEST_FILE, reason: `the manifest counts ${manifest.records} records and ${manifest.collectorAlerts} collector alerts; the files hold ${records} and ${collectorAlerts}` });
    }
    problems.explainDigests(manifest);
    return verdict(manifest, records);
  } finally {
    csv?.close();
  }
}

class Problems {
  readonly list: ExportProblem[] = [];
  count = 0;
  #manifest: ExportProblem | undefined;
  readonly #digests: Array<{ problem: ExportProblem; file: FileEntry }> = [];
  readonly #atLines: ExportProblem[] = [];

  add(problem: ExportProblem, about: { manifestAltered?: boolean; digestOf?: FileEntry } = {}): void {
    this.count++;
    if (this.list.length < MAX_PROBLEMS) this.list.push(problem);
    if (about.manifestAltered) this.#manifest ??= problem;
    if (about.digestOf) this.#digests.push({ problem, file: about.digestOf });
    if (problem.line !== undefined && this.#atLines.length < MAX_PROBLEMS) this.#atLines.push(problem);
  }

  /**
   * The altered manifest (all else was checked against it); else the first line of a file that is not the
   * one exported; else such a file; else the first line found (the manifest re-signed to match an edit).
   * A CSV or recording that differs only because what it was made from was altered is not named first.
   */
  first(): ExportProblem | undefined {
    const changed = new Set(this.#digests.map((d) => d.file.path));
    return this.#manifest
      ?? this.#atLines.find((p) => changed.has(p.file))
      ?? this.#digests[0]?.problem
      ?? this.#atLines[0]
      ?? this.list[0];
  }

  /** A file whose SHA-256 differs while none of its lines does: say where such a change can be. */
  explainDigests(manifest: Manifest): void {
    for (const { problem, file } of this.#digests) {
      if (this.list.some((p) => p.file === file.path && p.line !== undefined)) continue;
      if (file.role === 'records') {
        problem.reason += '; every record in it checks, so the change is in what the chain does not cover: a line\'s receivedAt';
      } else if (file.role === 'collector-alerts') {
        problem.reason += '; the collector\'s alerts are not chained: the manifest\'s SHA-256 is all that covers them';
      } else if (!manifest.files.some((f) => f.role === 'records')) {
        problem.reason += '; the bundle holds no records to rebuild it from';
      }
    }
  }
}

function readManifest(dir: string, problems: Problems): Manifest | undefined {
  let text: string;
  try {
    text = readFileSync(join(dir, MANIFEST_FILE), 'utf8');
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    problems.add({
      file: MANIFEST_FILE,
      reason: missing ? 'missing: nothing says what the export holds (an export cut short writes none)' : `unreadable: ${(error as Error).message}`,
    }, { manifestAltered: true });
    return undefined;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    problems.add({ file: MANIFEST_FILE, reason: `altered: not JSON (${(error as Error).message})` }, { manifestAltered: true });
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    problems.add({ file: MANIFEST_FILE, reason: 'altered: not a JSON object' }, { manifestAltered: true });
    return undefined;
  }
  const said = (value as Record<string, unknown>)['digest'];
  let computed: string | undefined;
  try {
    computed = manifestDigest(value as Record<string, unknown>);
  } catch {
    // Not a JSON value throughout (cannot happen for parsed JSON): the schema below says what is wrong.
  }
  if (computed !== said) {
    problems.add({ file: MANIFEST_FILE, reason: `altered after export: its content hashes to ${computed ?? '(nothing)'}, its digest says ${String(said)}` }, { manifestAltered: true });
  }
  // Its bytes are the export's too: a change that leaves the same values (spacing, escapes) is a change.
  if (computed === said && text !== `${JSON.stringify(value, null, 2)}\n`) {
    problems.add({ file: MANIFEST_FILE, reason: 'altered after export: the same values, spelled otherwise than the export writes them (spacing, escapes or key order)' }, { manifestAltered: true });
  }
  const parsed = ManifestSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    problems.add({ file: MANIFEST_FILE, reason: `not an omwatch export manifest: ${issue ? `${issue.path.join('.') || '(top)'}: ${issue.message}` : 'invalid'}` }, { manifestAltered: true });
    return undefined;
  }
  return parsed.data;
}

/** The listed files that are there as plain files; anything missing, of another kind or unlisted is a problem. */
function checkListing(dir: string, manifest: Manifest, problems: Problems): Set<string> {
  const listed = new Map(manifest.files.map((f) => [f.path, f]));
  const readable = new Set<string>();
  const walk = (relative: string, depth: number) => {
    for (const dirent of readdirSync(join(dir, relative), { withFileTypes: true })) {
      const path = relative === '' ? dirent.name : `${relative}/${dirent.name}`;
      if (path === MANIFEST_FILE) continue;
      if (dirent.isDirectory() && depth < MAX_DEPTH && !listed.has(path)) {
        walk(path, depth + 1);
        continue;
      }
      if (!listed.has(path)) {
        problems.add({ file: path, reason: 'not in the manifest: added after export' });
      } else if (!dirent.isFile()) {
        problems.add({ file: path, reason: `not a plain file (the export wrote one): ${dirent.isSymbolicLink() ? 'a symbolic link' : 'another kind of file'}` });
      } else {
        readable.add(path);
      }
    }
  };
  walk('', 0);
  for (const file of manifest.files) {
    if (readable.has(file.path)) continue;
    let exists = true;
    try {
      lstatSync(join(dir, file.path));
    } catch {
      exists = false;
    }
    if (!exists) problems.add({ file: file.path, reason: `missing: the manifest lists it (${file.bytes} bytes, SHA-256 ${file.sha256})` });
  }
  return readable;
}

/** Heads and sessions must name files the manifest lists, in the role they need. */
function checkReferences(manifest: Manifest, problems: Problems): void {
  const roleOf = new Map(manifest.files.map((f) => [f.path, f.role]));
  const need = (path: string, role: FileEntry['role'], by: string) => {
    if (roleOf.get(path) !== role) problems.add({ file: MANIFEST_FILE, reason: `${by} names ${path}, which the manifest does not list as a ${role} file` }, { manifestAltered: true });
  };
  for (const head of manifest.streams) need(head.file, 'records', `the chain head of stream ${head.stream}`);
  for (const session of manifest.sessions) {
    need(session.records, 'records', `session ${session.id}`);
    need(session.cast, 'cast', `session ${session.id}`);
  }
  if (manifest.format === 'csv' && !manifest.files.some((f) => f.role === 'csv')) {
    problems.add({ file: MANIFEST_FILE, reason: `a csv export lists no ${CSV_FILE}` }, { manifestAltered: true });
  }
}

function hashFile(path: string): { sha256: string; bytes: number } {
  const hash = createHash('sha256');
  let bytes = 0;
  for (const chunk of readChunks(path)) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

function* readChunks(path: string): Generator<Buffer, void, undefined> {
  const fd = openSync(path, 'r');
  try {
    // Sized to the file when smaller: bundles hold many small files (a cast, the collector alerts).
    const buffer = Buffer.allocUnsafe(Math.max(1, Math.min(READ_CHUNK_BYTES, fstatSync(fd).size + 1)));
    for (;;) {
      const read = readSync(fd, buffer, 0, buffer.length, null);
      if (read === 0) return;
      yield buffer.subarray(0, read);
    }
  } finally {
    closeSync(fd);
  }
}

/** The file's lines, split on LF only (export lines hold no other line break); the last may lack one. */
function* readLines(path: string): Generator<{ text: string; ended: boolean }, void, undefined> {
  const decoder = new StringDecoder('utf8');
  let rest = '';
  for (const chunk of readChunks(path)) {
    const parts = (rest + decoder.write(chunk)).split('\n');
    rest = parts.pop()!;
    for (const text of parts) yield { text, ended: true };
  }
  rest += decoder.end();
  if (rest !== '') yield { text: rest, ended: false };
}

/** A line of a JSON-lines file as its value, or undefined once the problem with it is added. */
function parseLine(text: string, ended: boolean, at: Omit<ExportProblem, 'reason'>, problems: Problems): unknown {
  if (!ended) problems.add({ ...at, reason: 'the last line has no line break: the file was cut short or added to' });
  if (text === '') {
    problems.add({ ...at, reason: 'empty line: the export writes none' });
    return undefined;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    problems.add({ ...at, reason: `not JSON (${(error as Error).message})` });
    return undefined;
  }
  return value;
}

const ENTRY_KEYS = ['agentId', 'stream', 'seq', 'receivedAt', 'record'];

function asRecordEntry(value: unknown): RecordEntry | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  const keys = Object.keys(value);
  if (keys.length !== ENTRY_KEYS.length || !ENTRY_KEYS.every((key, i) => keys[i] === key)) {
    return `its keys are ${keys.join(', ') || '(none)'}, not ${ENTRY_KEYS.join(', ')}`;
  }
  const entry = value as Record<string, unknown>;
  if (typeof entry['agentId'] !== 'string' || typeof entry['stream'] !== 'string' || typeof entry['receivedAt'] !== 'string') return 'agentId, stream and receivedAt must be strings';
  if (!Number.isSafeInteger(entry['seq']) || (entry['seq'] as number) < 1) return `seq ${JSON.stringify(entry['seq'])} is not a positive integer`;
  const record = entry['record'];
  if (typeof record !== 'object' || record === null || Array.isArray(record)) return 'its record is not a JSON object';
  return entry as unknown as RecordEntry;
}

/** How a records file was read from the store, for judging the seqs it leaves out. */
interface ReadOf {
  /** Read with no filter at all: every seq left out must be one its agent declared dropped. */
  everything: boolean;
  filter: RecordFilter;
  leftOut: LeftOut;
  store?: Store;
}

/** Walks a records file: each line checked on its own, then within its stream, then against the heads. */
function walkRecords(path: string, file: string, heads: readonly StreamHead[], read: ReadOf, problems: Problems, onEntry: (entry: RecordEntry, line: number) => void): void {
  const headOf = new Map(heads.map((head) => [head.stream, head]));
  const seen = new Set<string>();
  let walk: StreamCheck | undefined;
  let line = 0;
  try {
    for (const { text, ended } of readLines(path)) {
      line++;
      const value = parseLine(text, ended, { file, line }, problems);
      if (value === undefined) continue;
      const entry = asRecordEntry(value);
      if (typeof entry === 'string') {
        problems.add({ file, line, reason: `not a record line: ${entry}` });
        continue;
      }
      const at = { file, line, stream: entry.stream, seq: entry.seq };
      if (jsonLine(value) !== text) problems.add({ ...at, reason: 'not in the form the export writes: the same values spelled otherwise (spacing, escapes or key order)' });
      if (walk?.stream !== entry.stream) {
        walk?.finish();
        if (seen.has(entry.stream)) problems.add({ ...at, reason: `out of order: stream ${entry.stream} again after another stream (the export writes each stream's records together)` });
        seen.add(entry.stream);
        const head = headOf.get(entry.stream);
        if (!head) problems.add({ ...at, reason: `stream ${entry.stream} is not among the manifest's chain heads for ${file}` });
        walk = new StreamCheck(file, entry.stream, head, read, problems);
      }
      walk.add(entry, line);
      onEntry(entry, line);
    }
    walk?.finish();
  } finally {
    // After a failure part way, the reads of the store it opened are freed (finish frees them otherwise).
    walk?.close();
  }
  for (const head of heads) {
    if (!seen.has(head.stream)) {
      problems.add({ file, stream: head.stream, reason: `the manifest lists ${head.records} records of stream ${head.stream} (seq ${head.firstSeq}–${head.lastSeq}) in ${file}; it holds none` });
    }
  }
}

/** One stream's run of lines in a records file, as verify.ts walks a stored stream, against its head. */
class StreamCheck {
  readonly stream: string;
  readonly #file: string;
  readonly #head: StreamHead | undefined;
  readonly #read: ReadOf;
  readonly #problems: Problems;
  #count = 0;
  /** The last seq walked (before any, the one before the head's first) and the hash it carries. */
  #last: number;
  #lastHash: string | undefined;
  #lastLine = 0;
  #hashAtHead: { hash: string; line: number } | undefined;
  /** Runs of seqs not exported that the manifest says are left out, each with the line after it. */
  readonly #gaps: Array<{ range: MissingRange; line: number }> = [];
  readonly #declarations: Declaration[] = [];
  #store: StoreStreamCheck | undefined;
  /** The line of the record the store check was last told of: where a difference it finds is placed. */
  #storeLine = 0;

  constructor(file: string, stream: string, head: StreamHead | undefined, read: ReadOf, problems: Problems) {
    this.#file = file;
    this.stream = stream;
    this.#head = head;
    this.#read = read;
    this.#problems = problems;
    this.#last = head ? head.firstSeq - 1 : 0;
    this.#lastHash = head?.firstPrev;
  }

  add(entry: RecordEntry, line: number): void {
    const { seq } = entry;
    const record = entry.record as Record<string, unknown>;
    const at = { file: this.#file, line, stream: this.stream, seq };
    const fail = (reason: string) => this.#problems.add({ ...at, reason });
    const head = this.#head;

    if (head && entry.agentId !== head.agentId) fail(`agentId ${entry.agentId}, where the manifest gives ${head.agentId} for stream ${this.stream}`);
    if (this.#count > 0 && seq <= this.#last) {
      fail(`out of order: seq ${seq} after seq ${this.#last} (line ${this.#lastLine})`);
      return;
    }
    if (head && this.#count === 0 && seq < head.firstSeq) {
      fail(`seq ${seq} is before the manifest's first exported seq ${head.firstSeq} of the stream`);
      return;
    }
    this.#storeLine = line;
    if (head && this.#count === 0) {
      // An export of everything starts each stream at seq 1 unless its agent declared the first seqs dropped.
      if (this.#read.everything && head.firstSeq > 1) this.#gaps.push({ range: { from: 1, to: head.firstSeq - 1, beforeHash: GENESIS, afterPrev: head.firstPrev }, line });
      if (this.#read.store) {
        this.#store = new StoreStreamCheck(this.#read.store, this.stream, head.firstSeq, this.#read, (failedSeq, reason) => {
          this.#problems.add({ file: this.#file, line: this.#storeLine, stream: this.stream, seq: failedSeq, reason });
        });
      }
    }

    // The record on its own: it is the line's, and hashes to the hash it carries.
    const carried = record['hash'];
    if (record['stream'] !== this.stream || record['seq'] !== seq) {
      fail(`the line names stream ${this.stream} seq ${seq}, its record stream ${shown(record['stream'])} seq ${shown(record['seq'])}`);
    } else if (typeof carried !== 'string') {
      fail('the record carries no hash');
    } else {
      let computed: string | undefined;
      try {
        computed = chainHash(record);
      } catch (error) {
        fail(`the record cannot be hashed: ${(error as Error).message}`);
      }
      if (computed !== undefined && computed !== carried) fail(`hash mismatch: the record hashes to ${computed}, it carries ${carried}: its content or its hash was changed after it was chained`);
    }
    const declaration = declarationOf(seq, record);
    if (declaration) this.#declarations.push(declaration);

    // Its place in the stream: linked to the record before it, or past seqs the manifest says are left out.
    if (head && seq > head.lastSeq) fail(`seq ${seq} is past the manifest's last exported seq ${head.lastSeq} of the stream`);
    else if (head && inRanges(head.missing, seq)) fail(`the manifest says seq ${seq} is not in the export, yet this line holds it`);
    if (seq === this.#last + 1) {
      if (this.#lastHash !== undefined && record['prev'] !== this.#lastHash) {
        fail(this.#count === 0
          ? `prev ${shown(record['prev'])} differs from the manifest's firstPrev ${this.#lastHash}`
          : `broken link: prev ${shown(record['prev'])} is not the hash of seq ${seq - 1} (line ${this.#lastLine}), ${this.#lastHash}`);
      }
    } else if (head) {
      const lost = firstOutside(head.missing, this.#last + 1, seq - 1);
      if (lost !== undefined) fail(`seq ${lost} of stream ${this.stream} is missing: the manifest lists it as exported${lost === seq - 1 ? '' : ` (seqs ${lost}–${seq - 1} are not here)`}; this line holds seq ${seq}`);
      else this.#gaps.push({ range: { from: this.#last + 1, to: seq - 1, beforeHash: this.#lastHash, afterPrev: typeof record['prev'] === 'string' ? record['prev'] : undefined }, line });
    }
    this.#store?.exported(seq, entry.agentId, typeof carried === 'string' ? carried : undefined);
    if (head && seq === head.lastSeq && typeof carried === 'string') this.#hashAtHead = { hash: carried, line };
    // The carried hash, not a recomputed one: an edited record is reported once, not again at its successor.
    this.#lastHash = typeof carried === 'string' ? carried : undefined;
    this.#last = seq;
    this.#lastLine = line;
    this.#count++;
  }

  finish(): void {
    this.close();
    const head = this.#head;
    if (!head) return;
    if (this.#last < head.lastSeq) {
      const lost = firstOutside(head.missing, this.#last + 1, head.lastSeq);
      if (lost !== undefined) {
        this.#problems.add({
          file: this.#file, ...(this.#lastLine > 0 ? { line: this.#lastLine } : {}), stream: this.stream, seq: lost,
          reason: `seq ${lost} of stream ${this.stream} is missing: the manifest lists the stream's records up to seq ${head.lastSeq}; its lines here end at seq ${this.#last}${this.#lastLine > 0 ? ` (line ${this.#lastLine})` : ''}`,
        });
      }
    } else if (this.#hashAtHead && this.#hashAtHead.hash !== head.lastHash) {
      this.#problems.add({
        file: this.#file, line: this.#hashAtHead.line, stream: this.stream, seq: head.lastSeq,
        reason: `hash ${this.#hashAtHead.hash} differs from the manifest's lastHash ${head.lastHash} of the stream`,
      });
    }
    this.#judgeGaps();
  }

  /** Frees the store's reads, if any. */
  close(): void {
    this.#store?.close();
    this.#store = undefined;
  }

  /**
   * A run of seqs left out is accounted for by a declaration of its agent's in the bundle, or else by the
   * filter — which verify cannot check offline. An export of everything has no filter to account for one.
   */
  #judgeGaps(): void {
    const { leftOut, everything } = this.#read;
    for (const { range, line } of this.#gaps) {
      leftOut.ranges++;
      const failure = undeclared(range, this.#declarations, 'in the bundle');
      if (failure === undefined) {
        leftOut.declared++;
      } else if (!everything) {
        leftOut.byFilter++;
      } else {
        const seqs = seqsText(range.from, range.to);
        this.#problems.add({
          file: this.#file, line, stream: this.stream, seq: failure.seq,
          reason: `${seqs} of stream ${this.stream} ${range.from === range.to ? 'is' : 'are'} left out of an export of everything (no filter), where only seqs their agent declared dropped can be missing, and ${failure.reason}: lines were removed after export, or the store lacked them undeclared (verify --data says which)`,
        });
      }
    }
  }
}

function inRanges(ranges: ReadonlyArray<readonly [number, number]>, seq: number): boolean {
  return ranges.some(([from, to]) => seq >= from && seq <= to);
}

/** The lowest seq in [from, to] no range covers, if any. */
function firstOutside(ranges: ReadonlyArray<readonly [number, number]>, from: number, to: number): number | undefined {
  let seq = from;
  for (;;) {
    const covering = ranges.find(([a, b]) => seq >= a && seq <= b);
    if (!covering) return seq <= to ? seq : undefined;
    seq = covering[1] + 1;
    if (seq > to) return undefined;
  }
}

function walkCollectorAlerts(path: string, file: string, problems: Problems, onEntry: (entry: CollectorAlertEntry, line: number) => void): void {
  let line = 0;
  for (const { text, ended } of readLines(path)) {
    line++;
    const value = parseLine(text, ended, { file, line }, problems);
    if (value === undefined) continue;
    const alert = (value as { collectorAlert?: unknown } | null)?.collectorAlert;
    if (typeof value !== 'object' || value === null || Object.keys(value).length !== 1 || typeof alert !== 'object' || alert === null) {
      problems.add({ file, line, reason: 'not a collector alert line: {"collectorAlert":{…}}' });
      continue;
    }
    if (jsonLine(value) !== text) problems.add({ file, line, reason: 'not in the form the export writes: the same values spelled otherwise (spacing, escapes or key order)' });
    onEntry(value as CollectorAlertEntry, line);
  }
}

/** A session's records must all be the session's, and its .cast the recording they make. */
function checkSession(dir: string, session: SessionEntry, entries: ReadonlyArray<{ entry: RecordEntry; line: number }>, readable: ReadonlySet<string>, problems: Problems): void {
  for (const { entry, line } of entries) {
    const sessionId = storedView(entry).sessionId;
    if (sessionId !== session.id) {
      problems.add({ file: session.records, line, stream: entry.stream, seq: entry.seq, reason: `a record of ${sessionId === null ? 'no session' : `session ${sessionId}`} in the records of session ${session.id}` });
    }
  }
  let cast: ReturnType<typeof castOf>;
  try {
    cast = castOf(session.id, entries.map(({ entry }) => entry));
  } catch (error) {
    problems.add({ file: session.records, reason: `the recording of session ${session.id} cannot be made from these records: ${(error as Error).message}` });
    return;
  }
  if (cast.ended !== session.ended) {
    problems.add({ file: session.records, reason: `the manifest says session ${session.id} ${session.ended ? 'ended' : 'had not ended'}; its records say it ${cast.ended ? 'ended' : 'had not'}` });
  }
  if (JSON.stringify(cast.missing) !== JSON.stringify(session.missingChunks)) {
    problems.add({ file: session.records, reason: `the manifest says chunks [${rangesText(session.missingChunks)}] of session ${session.id} are missing; its records lack [${rangesText(cast.missing)}]` });
  }
  if (!readable.has(session.cast)) return;
  const actual = readFileSync(join(dir, session.cast), 'utf8');
  if (actual === cast.cast) return;
  const at = firstDifference(cast.cast, actual);
  problems.add({
    file: session.cast,
    line: lineOf(cast.cast, at),
    reason: `differs from the recording made from ${session.records}: that has ${excerpt(cast.cast, at)}, the file ${excerpt(actual, at)}`,
  });
}

/**
 * Compares a CSV file, as it is read, with the rows made again from the records and alerts it was made
 * from; stops at the first difference (after it, rows no longer line up) and names the column.
 */
class CsvCheck {
  readonly #file: string;
  readonly #problems: Problems;
  readonly #fd: number;
  readonly #decoder = new StringDecoder('utf8');
  readonly #chunk: Buffer;
  #buffer = '';
  #position = 0;
  #eof = false;
  #line = 1;
  #stopped = false;

  constructor(path: string, file: string, problems: Problems) {
    this.#file = file;
    this.#problems = problems;
    this.#fd = openSync(path, 'r');
    this.#chunk = Buffer.allocUnsafe(Math.max(1, Math.min(READ_CHUNK_BYTES, fstatSync(this.#fd).size + 1)));
  }

  expect(values: readonly string[], source: { file: string; line: number; stream?: string; seq?: number }): void {
    if (this.#stopped) return;
    const cells = values.map(csvCell);
    const row = `${cells.join(',')}${CSV_LINE_BREAK}`;
    this.#fill(row.length);
    const actual = this.#buffer.slice(this.#position, this.#position + row.length);
    if (actual === row) {
      this.#position += row.length;
      this.#line += count(row, '\n');
      return;
    }
    this.#stopped = true;
    const at = firstDifference(row, actual);
    const what = source.line === 0 ? 'the header' : `the row made from ${source.file} line ${source.line}`;
    this.#problems.add({
      file: this.#file,
      line: this.#line + count(row.slice(0, at), '\n'),
      ...(source.stream === undefined ? {} : { stream: source.stream }),
      ...(source.seq === undefined ? {} : { seq: source.seq }),
      reason: at >= actual.length && this.#eof
        ? `the file ends before ${what}`
        : `differs from ${what} in ${columnAt(cells, at)}: that has ${excerpt(row, at)}, the file ${excerpt(actual, at)}`,
    });
  }

  finish(): void {
    if (this.#stopped) return;
    this.#fill(1);
    if (this.#position < this.#buffer.length) {
      this.#problems.add({ file: this.#file, line: this.#line, reason: `rows after the last record and alert: ${excerpt(this.#buffer.slice(this.#position), 0)}` });
    }
  }

  close(): void {
    closeSync(this.#fd);
  }

  #fill(chars: number): void {
    if (this.#position > READ_CHUNK_BYTES) {
      this.#buffer = this.#buffer.slice(this.#position);
      this.#position = 0;
    }
    while (!this.#eof && this.#buffer.length - this.#position < chars) {
      const read = readSync(this.#fd, this.#chunk, 0, this.#chunk.length, null);
      if (read === 0) {
        this.#eof = true;
        this.#buffer += this.#decoder.end();
      } else {
        this.#buffer += this.#decoder.write(this.#chunk.subarray(0, read));
      }
    }
  }
}

/** The column of a row (cells joined by commas, then the line break) a character offset falls in. */
function columnAt(cells: readonly string[], offset: number): string {
  let end = 0;
  for (let i = 0; i < cells.length; i++) {
    end += cells[i]!.length;
    // A comma belongs to the cell before it.
    if (offset < end + (i < cells.length - 1 ? 1 : 0)) return `column ${CSV_COLUMNS[i] ?? i + 1}`;
    end += 1;
  }
  return 'the line break';
}

function firstDifference(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a.charCodeAt(i) !== b.charCodeAt(i)) return i;
  return n;
}

function lineOf(text: string, offset: number): number {
  return count(text.slice(0, offset), '\n') + 1;
}

function count(text: string, char: string): number {
  let n = 0;
  for (let i = text.indexOf(char); i !== -1; i = text.indexOf(char, i + 1)) n++;
  return n;
}

/** A little of the text around an offset, JSON-quoted so control characters show as escapes. */
function excerpt(text: string, offset: number): string {
  const from = Math.max(0, offset - 24);
  const part = text.slice(from, offset + 40);
  return part === '' ? '(nothing)' : `${from > 0 ? '…' : ''}${JSON.stringify(part)}${offset + 40 < text.length ? '…' : ''}`;
}

/** A value read from a record, for a reason: as is when plain and short, else JSON-encoded and cut. */
function shown(value: unknown): string {
  if (typeof value === 'number' || (typeof value === 'string' && /^[\x20-\x7e]{0,80}$/.test(value))) return String(value);
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}
