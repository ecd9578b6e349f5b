// writeExportBundle against real SQLite stores: what each format's bundle holds, byte for byte against
// the single-purpose exporters, and the manifest's account of it (hashes, chain heads, filter, sessions).
import { lstatSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CSV_LINE_BREAK, exportCsvLines, exportLines, jsonLine } from '../export.ts';
import { GENESIS } from '../protocol/chain.ts';
import { sessionCast } from '../sessions.ts';
import { sha256Hex, TestChain } from '../store/contract.ts';
import { openSqliteStore } from '../store/sqlite/index.ts';
import type { Store } from '../store/types.ts';
import { writeExportBundle, type BundleOptions } from './bundle.ts';
import { verifyExport } from './verify.ts';
import { sessionFileName } from './cast.ts';
import { manifestDigest, type BundleFilter } from './manifest.ts';
import { deliver, fillEvidenceStore, shellSession } from './testing.ts';

let dir: string;
let out: string;
let store: Store;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'omwatch-bundle-'));
  out = join(dir, 'bundle');
  store = openSqliteStore(join(dir, 'collector.db'));
});
afterEach(async () => {
  store.close();
  await rm(dir, { recursive: true, force: true });
});

const read = (path: string) => readFileSync(join(out, path), 'utf8');
const lines = (values: Iterable<string>) => [...values].map((line) => `${line}\n`).join('');

function bundle(format: BundleOptions['format'], filter?: BundleFilter, options: Partial<BundleOptions> = {}) {
  return writeExportBundle(store, {
    dir: out, format, collectorVersion: '9.9.9', now: () => new Date('2026-03-02T00:00:00.000Z'), ...(filter ? { filter } : {}), ...options,
  });
}

describe('writeExportBundle', () => {
  it('jsonl: the records as exportLines writes them, the collector alerts beside, and a manifest of both', () => {
    const { a, b, collectorAlert } = fillEvidenceStore(store);
    const progress: number[] = [];
    const { manifest, warnings } = bundle('jsonl', undefined, { onProgress: (records) => progress.push(records) });

    expect(readdirSync(out).sort()).toEqual(['collector-alerts.jsonl', 'manifest.json', 'records.jsonl']);
    expect(read('records.jsonl')).toBe(lines(exportLines(store, {})));
    expect(read('collector-alerts.jsonl')).toBe(`${jsonLine({ collectorAlert: { ...collectorAlert, details: JSON.parse(collectorAlert.details) as unknown } })}\n`);
    for (const name of readdirSync(out)) expect(lstatSync(join(out, name)).mode & 0o777, name).toBe(0o600);
    expect(read('manifest.json')).toBe(`${JSON.stringify(manifest, null, 2)}\n`);
    const file = (path: string, role: string) => ({ path, role, sha256: sha256Hex(read(path)), bytes: Buffer.byteLength(read(path)) });
    expect(manifest).toEqual({
      omwatchExport: 1,
      collector: { version: '9.9.9' },
      exportedAt: '2026-03-02T00:00:00.000Z',
      format: 'jsonl',
      filter: {},
      records: a.records.length + b.records.length,
      collectorAlerts: 1,
      files: [file('records.jsonl', 'records'), file('collector-alerts.jsonl', 'collector-alerts')],
      streams: [
        {
          file: 'records.jsonl', agentId: 'ag-a', stream: 'stream-a-0001', records: a.records.length, firstSeq: 1, firstPrev: GENESIS,
          lastSeq: a.records.length, lastHash: a.records.at(-1)!.hash, contiguous: true, missing: [],
        },
        { file: 'records.jsonl', agentId: 'ag-b', stream: 'stream-b-0001', records: 3, firstSeq: 1, firstPrev: GENESIS, lastSeq: 3, lastHash: b.records[2]!.hash, contiguous: true, missing: [] },
      ],
      sessions: [],
      digest: manifestDigest(manifest),
    });
    expect(warnings).toEqual([]);
    expect(progress.at(-1)).toBe(manifest.records);
  });

  it('records where a filtered export joins the rest of its chain: the prev of its first record, the hash of its last', () => {
    const { a } = fillEvidenceStore(store);
    const { manifest } = bundle('jsonl', { since: a.timeOf(2), until: a.timeOf(6), hostId: 'h1' });
    expect(manifest.filter).toEqual({ since: a.timeOf(2), until: a.timeOf(6), hostId: 'h1' });
    expect(manifest.streams).toEqual([{
      file: 'records.jsonl', agentId: 'ag-a', stream: 'stream-a-0001', records: 4, firstSeq: 2, firstPrev: a.records[0]!.hash,
      lastSeq: 5, lastHash: a.records[4]!.hash, contiguous: true, missing: [],
    }]);
    // The collector alerts of the window, as exportLines gives them (the host filter is the records').
    expect(manifest.collectorAlerts).toBe(0);
  });

  it('says which seqs a stream segment lacks: those the agent dropped, and those the filter left out', () => {
    const chain = new TestChain('stream-gap-0001');
    chain.event();
    chain.event({ sessionId: 'ssh-7' });
    const drop = chain.drop(2);
    chain.declare(drop);
    chain.event({ sessionId: 'ssh-7' });
    chain.event();
    chain.event({ sessionId: 'ssh-7' });
    deliver(store, chain, 'ag-1');
    expect(bundle('jsonl').manifest.streams[0]).toMatchObject({ firstSeq: 1, lastSeq: 8, records: 6, contiguous: false, missing: [[3, 4]] });
    out = join(dir, 'session-only');
    expect(bundle('jsonl', { sessionId: 'ssh-7' }).manifest.streams[0]).toMatchObject({
      firstSeq: 2, firstPrev: chain.records[0]!.hash, lastSeq: 8, lastHash: chain.records.at(-1)!.hash, records: 3, contiguous: false, missing: [[3, 5], [7, 7]],
    });
  });

  it('csv: records.csv is exportCsvLines with the collector alerts, row for row, beside the records it was made from', () => {
    fillEvidenceStore(store);
    const filter = { until: '2026-03-01T10:40:00.000Z' };
    const { manifest } = bundle('csv', filter);
    expect(readdirSync(out).sort()).toEqual(['collector-alerts.jsonl', 'manifest.json', 'records.csv', 'records.jsonl']);
    expect(read('records.csv')).toBe([...exportCsvLines(store, { ...filter, includeCollectorAlerts: true })].map((row) => `${row}${CSV_LINE_BREAK}`).join(''));
    expect(read('records.jsonl')).toBe(lines(exportLines(store, filter)));
    expect(manifest.files.map((f) => [f.path, f.role])).toEqual([['records.jsonl', 'records'], ['collector-alerts.jsonl', 'collector-alerts'], ['records.csv', 'csv']]);
    expect(manifest.collectorAlerts).toBe(1);
  });

  it('asciicast: one .cast per recorded shell session open in the window, made from the session\'s records written beside it', () => {
    const { sessionId, b } = fillEvidenceStore(store);
    // A second session, later, on the other host, still open.
    const late = 'shell-0193aa00-0000-7000-8000-000000000002';
    shellSession(b, late, { chunks: ['[0.2, "o", "# "]\n'], open: true });
    deliver(store, b, 'ag-b', b.records.slice(3));

    const first = bundle('asciicast', { until: '2026-03-01T10:30:00.000Z' });
    expect(readdirSync(join(out, 'sessions')).sort()).toEqual([`${sessionId}.cast`, `${sessionId}.jsonl`]);
    expect(read(`sessions/${sessionId}.cast`)).toBe(sessionCast(store, sessionId).cast);
    expect(read(`sessions/${sessionId}.jsonl`)).toBe(lines(exportLines(store, { sessionId })));
    expect(first.manifest.sessions).toEqual([{ id: sessionId, cast: `sessions/${sessionId}.cast`, records: `sessions/${sessionId}.jsonl`, ended: true, missingChunks: [] }]);
    expect(first.manifest.streams).toMatchObject([{ file: `sessions/${sessionId}.jsonl`, stream: 'stream-a-0001', firstSeq: 5, lastSeq: 9, contiguous: true }]);
    expect(first.manifest.files.map((f) => f.path)).toEqual([`sessions/${sessionId}.jsonl`, `sessions/${sessionId}.cast`]);
    expect(first.warnings).toEqual([]);

    // Without a window: both, by start; the open one is said to be open.
    out = join(dir, 'all');
    const all = bundle('asciicast');
    expect(all.manifest.sessions.map((s) => [s.id, s.ended])).toEqual([[sessionId, true], [late, false]]);
    expect(all.warnings).toEqual([`session ${late} has no end stored yet (live, or its agent has not delivered it): the recording may continue`]);
    // A window after the first ended: only the one still open then.
    out = join(dir, 'late');
    expect(bundle('asciicast', { since: '2026-03-01T10:30:00.000Z' }).manifest.sessions.map((s) => s.id)).toEqual([late]);
    out = join(dir, 'host');
    expect(bundle('asciicast', { hostId: 'h2' }).manifest.sessions.map((s) => s.id)).toEqual([late]);
  });

  it('says which recording chunks the store lacks, in the manifest and as a warning', () => {
    const chain = new TestChain('stream-0001');
    shellSession(chain, 'shell-1', { chunks: ['[0.1, "o", "a"]\n', '[0.2, "o", "b"]\n', '[0.3, "o", "c"]\n'] });
    deliver(store, chain, 'ag-1', chain.records.filter((r) => (r as { fields?: { Chunk?: number } }).fields?.Chunk !== 1));
    const { manifest, warnings } = bundle('asciicast');
    expect(manifest.sessions[0]).toMatchObject({ id: 'shell-1', ended: true, missingChunks: [[1, 1]] });
    expect(read('sessions/shell-1.cast')).toBe(sessionCast(store, 'shell-1').cast);
    expect(warnings).toEqual([expect.stringMatching(/^session shell-1: recording chunks 1 \(1 in all\) are not in the store .*sessions\/shell-1\.cast lacks them$/)]);
  });

  it('names session files safely: an id an agent chose cannot leave the folder or collide, even ignoring case', () => {
    const hash = (text: string) => sha256Hex(text);
    expect(sessionFileName('shell-0193aa00', hash)).toBe('shell-0193aa00');
    for (const hostile of ['../../etc/passwd', '.hidden', 'a/b', 'con\u0000', '', 'x'.repeat(200), 'é']) {
      expect(sessionFileName(hostile, hash), JSON.stringify(hostile)).toMatch(/^[A-Za-z0-9_][A-Za-z0-9._-]*-[0-9a-f]{16}$/);
    }
    const chain = new TestChain('stream-0001');
    for (const id of ['Shell-A', 'shell-a', '../shell-a']) shellSession(chain, id, { chunks: ['[0.1, "o", "x"]\n'] });
    deliver(store, chain, 'ag-1');
    const { manifest } = bundle('asciicast');
    const casts = manifest.sessions.map((s) => s.cast.toLowerCase());
    expect(new Set(casts).size).toBe(3);
    for (const session of manifest.sessions) expect(read(session.cast)).toBe(sessionCast(store, session.id).cast);
  });

  it('names a session file after no Windows device name: CON, nul, COM1, LPT9, aux.txt and the like get the hash (review finding)', () => {
    const hash = (text: string) => sha256Hex(text);
    const device = /^(?:con|prn|aux|nul|com[0-9]|lpt[0-9])(?:\.|$)/i;
    for (const id of ['CON', 'con', 'nul', 'Nul', 'PRN', 'aux', 'COM1', 'com0', 'LPT9', 'aux.txt', 'NUL.tar.gz', 'con.', 'Com7.cast']) {
      const name = sessionFileName(id, hash);
      expect(name, id).toMatch(/^[A-Za-z0-9_][A-Za-z0-9._-]*-[0-9a-f]{16}$/);
      // The bundle's files are the name and an extension: neither may be the device.
      for (const file of [name, `${name}.jsonl`, `${name}.cast`]) expect(file, id).not.toMatch(device);
    }
    // Names that only begin like one are names.
    for (const id of ['CONSOLE', 'com10', 'lpt', 'nullable', 'auxiliary.x', 'con-1', 'shell-nul']) expect(sessionFileName(id, hash)).toBe(id);

    const chain = new TestChain('stream-0001');
    for (const id of ['CON', 'aux.txt']) shellSession(chain, id, { chunks: ['[0.1, "o", "x"]\n'] });
    deliver(store, chain, 'ag-1');
    const { manifest } = bundle('asciicast');
    expect(manifest.sessions.map((s) => s.cast)).toEqual([`sessions/CON-${hash('CON').slice(0, 16)}.cast`, `sessions/aux_txt-${hash('aux.txt').slice(0, 16)}.cast`]);
    expect(verifyExport(out).ok).toBe(true);
  });

  it('stops at a stored body that is not JSON, naming it, and leaves no manifest: verify calls the bundle incomplete', () => {
    fillEvidenceStore(store);
    const raw = new Database(join(dir, 'collector.db'));
    try {
      raw.prepare("UPDATE records SET body = 'not json' WHERE stream = 'stream-b-0001' AND seq = 2").run();
    } finally {
      raw.close();
    }
    expect(() => bundle('csv')).toThrow(/^export: stream stream-b-0001 seq 2: stored body is not JSON/);
    expect(readdirSync(out).sort()).toEqual(['records.csv', 'records.jsonl']);
    expect(verifyExport(out).firstAltered).toEqual({ file: 'manifest.json', reason: 'missing: nothing says what the export holds (an export cut short writes none)' });
  });

  it('refuses a directory that holds anything, and a session the store does not hold', () => {
    fillEvidenceStore(store);
    mkdirSync(out);
    writeFileSync(join(out, 'notes.txt'), 'mine');
    expect(() => bundle('jsonl')).toThrow(expect.objectContaining({ code: 'EXPORT_DIR_NOT_EMPTY', message: expect.stringContaining('notes.txt') }));
    expect(readdirSync(out)).toEqual(['notes.txt']);
    out = join(dir, 'none');
    expect(() => bundle('asciicast', { sessionId: 'shell-nope' })).toThrow(expect.objectContaining({ code: 'EXPORT_NO_SESSION', message: 'export: no recorded shell session shell-nope in this store' }));
    // Left empty, so the same command can run again once the session is there.
    expect(readdirSync(out)).toEqual([]);
  });
});
