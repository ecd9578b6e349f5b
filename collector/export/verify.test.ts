// verifyExport against bundles written from real SQLite stores, then altered the way someone holding the
// copy could: one byte of a record, of the CSV, of a recording or of the manifest; a line deleted, moved
// or added; a file added, removed or swapped for a link; the manifest re-signed to match an edit; records
// deleted and declared left out; and, with the store at hand, what the bundle alone cannot show.
import { readdirSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chainHash } from '../protocol/chain.ts';
import { TestChain } from '../store/contract.ts';
import { openSqliteStore } from '../store/sqlite/index.ts';
import type { Store } from '../store/types.ts';
import type { RecordEntry } from '../export.ts';
import { writeExportBundle } from './bundle.ts';
import { manifestDigest, type ExportFormat, type Manifest } from './manifest.ts';
import { deliver, editRecords, fillEvidenceStore, resignBundle, shellSession, type EvidenceStore } from './testing.ts';
import { verifyExport, type ExportVerdict } from './verify.ts';

let dir: string;
let out: string;
let store: Store;
let evidence: EvidenceStore;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'omwatch-verify-export-'));
  out = join(dir, 'bundle');
  store = openSqliteStore(join(dir, 'collector.db'));
  evidence = fillEvidenceStore(store);
});
afterEach(async () => {
  store.close();
  await rm(dir, { recursive: true, force: true });
});

function bundle(format: ExportFormat): Manifest {
  return writeExportBundle(store, { dir: out, format, collectorVersion: '9.9.9' }).manifest;
}

const path = (file: string) => join(out, file);
const linesOf = (file: string) => readFileSync(path(file), 'utf8').split('\n');

/** Replaces the one occurrence of `from` in the file (searched from `after`) with `to`. */
function edit(file: string, from: string, to: string, after = 0): void {
  const text = readFileSync(path(file), 'utf8');
  const at = text.indexOf(from, after);
  if (at === -1 || text.indexOf(from, at + 1) !== -1 && after === 0) throw new Error(`edit: ${JSON.stringify(from)} is not once in ${file}`);
  writeFileSync(path(file), text.slice(0, at) + to + text.slice(at + from.length));
}

/** The 1-based line of the file holding the record of the stream and seq. */
function lineOf(file: string, stream: string, seq: number): number {
  return linesOf(file).findIndex((line) => line.startsWith(`{"agentId":`) && line.includes(`"stream":"${stream}","seq":${seq},`)) + 1;
}

function altered(verdict: ExportVerdict): ExportVerdict['firstAltered'] {
  expect(verdict.ok).toBe(false);
  return verdict.firstAltered;
}

describe('verifyExport', () => {
  it.each(['jsonl', 'csv', 'asciicast'] as const)('passes a %s bundle as written, and says what it checked', (format) => {
    const manifest = bundle(format);
    const verdict = verifyExport(out);
    expect(verdict).toEqual({
      ok: true, dir: out, format, exportedAt: manifest.exportedAt, collectorVersion: '9.9.9', filter: {}, files: manifest.files.length,
      heads: manifest.streams, sessions: format === 'asciicast' ? 1 : 0, records: manifest.records,
      leftOut: { ranges: 0, declared: 0, byFilter: 0 }, againstStore: false, problems: [], problemCount: 0,
    });
    expect(verifyExport(out, { store })).toMatchObject({ ok: true, againstStore: true, problemCount: 0 });
  });

  it('names the record one byte of whose field value changed: file, line, stream, seq and what differs', () => {
    bundle('jsonl');
    const { a } = evidence;
    const target = a.records.find((r) => (r as { fields?: { CommandLine?: string } }).fields?.CommandLine === 'systemctl restart plc-gateway')!;
    // One byte in the middle of the value: "restart" → "resuart".
    edit('records.jsonl', 'systemctl restart plc-gateway', 'systemctl resuart plc-gateway');
    const verdict = verifyExport(out);
    const line = lineOf('records.jsonl', 'stream-a-0001', target.seq);
    expect(line).toBeGreaterThan(1);
    expect(altered(verdict)).toEqual({
      file: 'records.jsonl', line, stream: 'stream-a-0001', seq: target.seq,
      reason: expect.stringMatching(new RegExp(`^hash mismatch: the record hashes to [0-9a-f]{64}, it carries ${target.hash}: its content or its hash was changed after it was chained$`)),
    });
    expect(verdict.problems).toEqual([
      { file: 'records.jsonl', reason: expect.stringMatching(/^SHA-256 [0-9a-f]{64} differs from the manifest's [0-9a-f]{64} \(\d+ bytes; the manifest says \d+\)$/) },
      verdict.firstAltered,
    ]);
  });

  it('names the manifest when one byte of it changed, whatever the byte', () => {
    const manifest = bundle('jsonl');
    edit('manifest.json', manifest.exportedAt, manifest.exportedAt.replace(/^2/, '1'));
    expect(altered(verifyExport(out))).toEqual({ file: 'manifest.json', reason: expect.stringMatching(/^altered after export: its content hashes to [0-9a-f]{64}, its digest says [0-9a-f]{64}$/) });

    // Spacing only: the values (and so the digest) are the same, the bytes are not.
    rmSync(out, { recursive: true });
    bundle('jsonl');
    edit('manifest.json', '\n  "collector"', '\n "collector"');
    expect(altered(verifyExport(out))).toEqual({ file: 'manifest.json', reason: 'altered after export: the same values, spelled otherwise than the export writes them (spacing, escapes or key order)' });

    // A file's hash in the manifest: the manifest is named first, not the file it slanders.
    rmSync(out, { recursive: true });
    const again = bundle('jsonl');
    const sha = again.files[0]!.sha256;
    edit('manifest.json', sha, `${sha.slice(0, 10)}${sha[10] === 'a' ? 'b' : 'a'}${sha.slice(11)}`);
    const verdict = verifyExport(out);
    expect(altered(verdict)?.file).toBe('manifest.json');
    expect(verdict.problems.map((p) => p.file)).toEqual(['manifest.json', 'records.jsonl']);
  });

  it('names the record at a stream head when the manifest was edited and its digest recomputed to match', () => {
    const manifest = bundle('jsonl');
    const forged = structuredClone(manifest);
    forged.streams[1]!.lastHash = chainHash({ forged: true });
    forged.digest = manifestDigest(forged);
    writeFileSync(path('manifest.json'), `${JSON.stringify(forged, null, 2)}\n`);
    expect(altered(verifyExport(out))).toEqual({
      file: 'records.jsonl', line: lineOf('records.jsonl', 'stream-b-0001', 3), stream: 'stream-b-0001', seq: 3,
      reason: `hash ${evidence.b.records[2]!.hash} differs from the manifest's lastHash ${forged.streams[1]!.lastHash} of the stream`,
    });
  });

  it('names the seq of a deleted line, where it was, and a deleted last line of a stream', () => {
    bundle('jsonl');
    const lines = linesOf('records.jsonl');
    const gone = lineOf('records.jsonl', 'stream-a-0001', 4);
    writeFileSync(path('records.jsonl'), lines.filter((_, i) => i !== gone - 1).join('\n'));
    expect(altered(verifyExport(out))).toEqual({
      file: 'records.jsonl', line: gone, stream: 'stream-a-0001', seq: 5,
      reason: 'seq 4 of stream stream-a-0001 is missing: the manifest lists it as exported; this line holds seq 5',
    });

    const last = lineOf('records.jsonl', 'stream-b-0001', 3);
    writeFileSync(path('records.jsonl'), `${linesOf('records.jsonl').filter((_, i) => i !== last - 1).join('\n')}`);
    const verdict = verifyExport(out);
    expect(verdict.problems).toContainEqual({
      file: 'records.jsonl', line: last - 1, stream: 'stream-b-0001', seq: 3,
      reason: `seq 3 of stream stream-b-0001 is missing: the manifest lists the stream's records up to seq 3; its lines here end at seq 2 (line ${last - 1})`,
    });
  });

  it('names lines moved out of order, and a line added where the manifest says nothing was exported', () => {
    bundle('jsonl');
    const lines = linesOf('records.jsonl');
    const second = lineOf('records.jsonl', 'stream-a-0001', 2);
    [lines[second - 1], lines[second]] = [lines[second]!, lines[second - 1]!];
    writeFileSync(path('records.jsonl'), lines.join('\n'));
    expect(altered(verifyExport(out))).toEqual({
      file: 'records.jsonl', line: second, stream: 'stream-a-0001', seq: 3,
      reason: 'seq 2 of stream stream-a-0001 is missing: the manifest lists it as exported; this line holds seq 3',
    });
    expect(verifyExport(out).problems).toContainEqual({ file: 'records.jsonl', line: second + 1, stream: 'stream-a-0001', seq: 2, reason: `out of order: seq 2 after seq 3 (line ${second})` });

    // A record added into a segment that leaves seqs out (a filtered export) is not one it holds.
    rmSync(out, { recursive: true });
    const chain = new TestChain('stream-c-0001');
    chain.event({ sessionId: 'ssh-3' });
    chain.event();
    chain.event({ sessionId: 'ssh-3' });
    deliver(store, chain, 'ag-c');
    writeExportBundle(store, { dir: out, format: 'jsonl', collectorVersion: '9.9.9', filter: { sessionId: 'ssh-3' } });
    expect(verifyExport(out).ok).toBe(true);
    const [first, third] = linesOf('records.jsonl');
    const inserted = JSON.stringify({ agentId: 'ag-c', stream: 'stream-c-0001', seq: 2, receivedAt: '2026-03-01T10:00:00.000Z', record: chain.records[1] });
    writeFileSync(path('records.jsonl'), `${first}\n${inserted}\n${third}\n`);
    expect(altered(verifyExport(out))).toEqual({
      file: 'records.jsonl', line: 2, stream: 'stream-c-0001', seq: 2, reason: 'the manifest says seq 2 is not in the export, yet this line holds it',
    });
  });

  it('names the row and column of a CSV cell one byte of which changed, and the record it was made from', () => {
    bundle('csv');
    const csv = readFileSync(path('records.csv'), 'utf8');
    const at = csv.indexOf('systemctl restart plc-gateway');
    writeFileSync(path('records.csv'), `${csv.slice(0, at + 11)}u${csv.slice(at + 12)}`);
    const seq = evidence.a.records.findIndex((r) => (r as { fields?: { CommandLine?: string } }).fields?.CommandLine === 'systemctl restart plc-gateway') + 1;
    const line = csv.slice(0, at).split('\r\n').length;
    expect(altered(verifyExport(out))).toEqual({
      file: 'records.csv', line, stream: 'stream-a-0001', seq,
      reason: `differs from the row made from records.jsonl line ${lineOf('records.jsonl', 'stream-a-0001', seq)} in column command_line: that has …"${csv.slice(at - 13, at + 51).replaceAll('"', '\\"')}"…, the file …"${csv.slice(at - 13, at + 11).replaceAll('"', '\\"')}u${csv.slice(at + 12, at + 51).replaceAll('"', '\\"')}"…`,
    });
  });

  it('names a row added to the CSV after the last, and a CSV cut short', () => {
    bundle('csv');
    const csv = readFileSync(path('records.csv'), 'utf8');
    writeFileSync(path('records.csv'), `${csv}=1+1,x\r\n`);
    expect(altered(verifyExport(out))).toEqual({ file: 'records.csv', line: csv.split('\r\n').length, reason: 'rows after the last record and alert: "=1+1,x\\r\\n"' });
    writeFileSync(path('records.csv'), csv.slice(0, csv.lastIndexOf('\r\n', csv.length - 3) + 2));
    expect(altered(verifyExport(out))).toMatchObject({ file: 'records.csv', reason: 'the file ends before the row made from collector-alerts.jsonl line 1' });
  });

  it('names the line of a recording one byte of which changed', () => {
    const manifest = bundle('asciicast');
    const cast = manifest.sessions[0]!.cast;
    edit(cast, '3 days', '4 days');
    expect(altered(verifyExport(out))).toEqual({
      file: cast, line: 4,
      reason: `differs from the recording made from ${manifest.sessions[0]!.records}: that has …${JSON.stringify('"uptime\\r\\n 10:00:01 up 3 days\\r\\n$ "]\n')}, the file …${JSON.stringify('"uptime\\r\\n 10:00:01 up 4 days\\r\\n$ "]\n')}`,
    });
  });

  it('names a recording chunk deleted from a session\'s records: the chain and the cast both say so', () => {
    const manifest = bundle('asciicast');
    const records = manifest.sessions[0]!.records;
    writeFileSync(path(records), linesOf(records).filter((line) => !line.includes('"Chunk":1')).join('\n'));
    const verdict = verifyExport(out);
    expect(altered(verdict)).toMatchObject({ file: records, line: 3, stream: 'stream-a-0001', seq: 8, reason: expect.stringMatching(/^seq 7 of stream stream-a-0001 is missing/) });
    expect(verdict.problems).toContainEqual({ file: records, reason: `the manifest says chunks [] of session ${evidence.sessionId} are missing; its records lack [1]` });
    expect(verdict.problems).toContainEqual(expect.objectContaining({ file: manifest.sessions[0]!.cast, line: 4 }));
  });

  it('names a file added, a file removed, and a link in place of a file', () => {
    bundle('csv');
    writeFileSync(path('README.txt'), 'trust me');
    expect(altered(verifyExport(out))).toEqual({ file: 'README.txt', reason: 'not in the manifest: added after export' });
    unlinkSync(path('README.txt'));
    unlinkSync(path('collector-alerts.jsonl'));
    expect(verifyExport(out).problems[0]).toEqual({ file: 'collector-alerts.jsonl', reason: expect.stringMatching(/^missing: the manifest lists it \(\d+ bytes, SHA-256 [0-9a-f]{64}\)$/) });
    symlinkSync('/etc/hostname', path('collector-alerts.jsonl'));
    expect(verifyExport(out).problems[0]).toEqual({ file: 'collector-alerts.jsonl', reason: 'not a plain file (the export wrote one): a symbolic link' });
    rmSync(path('manifest.json'));
    expect(altered(verifyExport(out))).toEqual({ file: 'manifest.json', reason: 'missing: nothing says what the export holds (an export cut short writes none)' });
  });

  it('says where a change the chain does not cover can be: a receivedAt, a collector alert', () => {
    bundle('jsonl');
    const receivedAt = /"receivedAt":"([^"]+)"/.exec(linesOf('records.jsonl')[1]!)![1]!;
    edit('records.jsonl', receivedAt, receivedAt.replace(/\d(?=Z$)/, (d) => String((Number(d) + 1) % 10)), readFileSync(path('records.jsonl'), 'utf8').indexOf('\n'));
    expect(altered(verifyExport(out))).toEqual({ file: 'records.jsonl', reason: expect.stringMatching(/ every record in it checks, so the change is in what the chain does not cover: a line's receivedAt$/) });
    rmSync(out, { recursive: true });
    bundle('jsonl');
    edit('collector-alerts.jsonl', 'evil.example', 'evil.exampla');
    expect(altered(verifyExport(out))).toEqual({ file: 'collector-alerts.jsonl', reason: expect.stringMatching(/; the collector's alerts are not chained: the manifest's SHA-256 is all that covers them$/) });
  });

  it.each(['jsonl', 'csv', 'asciicast'] as const)('detects one changed byte anywhere in a %s bundle, and names its file', (format) => {
    // A small store, and every 5th byte of every file, a phase of its own per file, so every kind of byte
    // is hit (keys, values, hashes, quotes, line breaks). With a stride of 1 (30 s) every byte is caught too.
    store.close();
    for (const suffix of ['', '-wal', '-shm']) rmSync(join(dir, `collector.db${suffix}`), { force: true });
    store = openSqliteStore(join(dir, 'collector.db'));
    const chain = new TestChain('s-000001', { host: { id: 'h', name: 'n' } });
    shellSession(chain, 'sh-1', { chunks: ['[0.1, "o", "=x"]\n'], commandLine: '-c' });
    deliver(store, chain, 'ag');
    bundle(format);
    const files = ['manifest.json', ...readdirSync(out, { recursive: true, encoding: 'utf8' }).filter((f) => f.includes('.') && f !== 'manifest.json')];
    const STRIDE = 5;
    let tried = 0;
    for (const [index, file] of files.entries()) {
      const original = readFileSync(path(file));
      for (let offset = index % STRIDE; offset < original.length; offset += STRIDE) {
        const changed = Buffer.from(original);
        changed[offset] = changed[offset]! ^ [0x01, 0x20, 0x04][tried % 3]!;
        writeFileSync(path(file), changed);
        const verdict = verifyExport(out);
        expect(verdict.ok, `${file} byte ${offset}`).toBe(false);
        expect(verdict.firstAltered?.file, `${file} byte ${offset}`).toBe(file);
        tried++;
      }
      writeFileSync(path(file), original);
    }
    expect(verifyExport(out).ok).toBe(true);
    expect(tried).toBeGreaterThan(500);
  });
});

describe('verifyExport: seqs a bundle leaves out', () => {
  const everythingLeftOut = (from: number, to: number, stream: string, why: string) =>
    `${from === to ? `seq ${from} of stream ${stream} is` : `seqs ${from}–${to} of stream ${stream} are`} left out of an export of everything (no filter), where only seqs their agent declared dropped can be missing, and ${why}: lines were removed after export, or the store lacked them undeclared (verify --data says which)`;
  const withoutSeqs = (stream: string, seqs: readonly number[]) => (entries: RecordEntry[]) => entries.filter((e) => e.stream !== stream || !seqs.includes(e.seq));

  it('names seqs deleted from an export of everything and declared left out in a re-signed manifest: the range and the stream (review finding)', () => {
    bundle('jsonl');
    editRecords(out, 'records.jsonl', withoutSeqs('stream-a-0001', [2, 3]));
    const forged = resignBundle(out);
    expect(forged.streams[0]).toMatchObject({ stream: 'stream-a-0001', firstSeq: 1, contiguous: false, missing: [[2, 3]] });
    const verdict = verifyExport(out);
    expect(altered(verdict)).toEqual({
      file: 'records.jsonl', line: lineOf('records.jsonl', 'stream-a-0001', 4), stream: 'stream-a-0001', seq: 2,
      reason: everythingLeftOut(2, 3, 'stream-a-0001', 'no buffer_dropped declaration in the bundle covers seqs 2–3'),
    });
    expect(verdict.problemCount).toBe(1);
    expect(verdict.leftOut).toEqual({ ranges: 1, declared: 0, byFilter: 0 });

    // The first seqs of a stream, the manifest's firstSeq and firstPrev moved past them.
    rmSync(out, { recursive: true });
    bundle('jsonl');
    editRecords(out, 'records.jsonl', withoutSeqs('stream-b-0001', [1, 2]));
    expect(resignBundle(out).streams[1]).toMatchObject({ stream: 'stream-b-0001', firstSeq: 3, firstPrev: evidence.b.records[1]!.hash, contiguous: true });
    expect(altered(verifyExport(out))).toEqual({
      file: 'records.jsonl', line: lineOf('records.jsonl', 'stream-b-0001', 3), stream: 'stream-b-0001', seq: 1,
      reason: everythingLeftOut(1, 2, 'stream-b-0001', 'no buffer_dropped declaration in the bundle covers seqs 1–2'),
    });
  });

  it('passes seqs an agent dropped and declared, in the middle or at the start of its stream, in an export of everything', () => {
    const chain = new TestChain('stream-drop-0001');
    const first = chain.drop(2);
    chain.declare(first);
    chain.event();
    const middle = chain.drop(3);
    chain.event();
    chain.declare(middle);
    deliver(store, chain, 'ag-d');
    const manifest = bundle('jsonl');
    expect(manifest.streams.find((h) => h.stream === chain.stream)).toMatchObject({ firstSeq: 3, firstPrev: first.toHash, missing: [[5, 7]] });
    const verdict = verifyExport(out);
    expect(verdict).toMatchObject({ ok: true, problems: [], leftOut: { ranges: 2, declared: 2, byFilter: 0 } });
    // And the store agrees: the seqs are not there either, and it holds the same declarations.
    expect(verifyExport(out, { store })).toMatchObject({ ok: true, problems: [], againstStore: true });
  });

  it('names a declaration whose hashes do not meet the records on both sides of the seqs it declares dropped', () => {
    const chain = new TestChain('stream-drop-0001');
    chain.event();
    const drop = chain.drop(2);
    chain.declare(drop, { FromPrev: chainHash({ forged: true }) });
    chain.event();
    deliver(store, chain, 'ag-d');
    bundle('jsonl');
    expect(altered(verifyExport(out))).toEqual({
      file: 'records.jsonl', line: lineOf('records.jsonl', chain.stream, 4), stream: chain.stream, seq: 2,
      reason: everythingLeftOut(2, 3, chain.stream, `buffer_dropped at seq 4 declares seqs 2–3 with FromPrev ${chainHash({ forged: true })}, but the hash before them is ${chain.records[0]!.hash}`),
    });
  });

  it('counts the seqs a filtered bundle leaves out: those a declaration covers are checked, the filter\'s cannot be offline', () => {
    const chain = new TestChain('stream-gap-0001');
    chain.event();
    chain.event({ time: '2026-03-01T09:00:00.000Z' });
    const drop = chain.drop(2);
    chain.declare(drop);
    chain.event();
    deliver(store, chain, 'ag-g');
    writeExportBundle(store, { dir: out, format: 'jsonl', collectorVersion: '9.9.9', filter: { since: '2026-03-01T09:30:00.000Z', hostId: chain.host.id } });
    const verdict = verifyExport(out);
    // Seq 2 is before `since`; seqs 3–4 were dropped and are declared at seq 5.
    expect(verdict.heads[0]).toMatchObject({ firstSeq: 1, lastSeq: 6, missing: [[2, 4]] });
    expect(verdict).toMatchObject({ ok: true, leftOut: { ranges: 1, declared: 0, byFilter: 1 } });
    expect(verifyExport(out, { store })).toMatchObject({ ok: true, problems: [], againstStore: true });

    rmSync(out, { recursive: true });
    writeExportBundle(store, { dir: out, format: 'jsonl', collectorVersion: '9.9.9', filter: { hostId: chain.host.id } });
    expect(verifyExport(out)).toMatchObject({ ok: true, leftOut: { ranges: 1, declared: 1, byFilter: 0 } });
  });

  it('against the store, names a record the filter selects that a filtered bundle leaves out: the attack above, filtered (review finding)', () => {
    const { a } = evidence;
    writeExportBundle(store, { dir: out, format: 'jsonl', collectorVersion: '9.9.9', filter: { hostId: 'h1' } });
    editRecords(out, 'records.jsonl', withoutSeqs('stream-a-0001', [2, 3]));
    resignBundle(out);
    // Offline, the filter could have left them out: verify says it cannot tell.
    expect(verifyExport(out)).toMatchObject({ ok: true, leftOut: { ranges: 1, declared: 0, byFilter: 1 } });
    const verdict = verifyExport(out, { store });
    expect(altered(verdict)).toEqual({
      file: 'records.jsonl', line: lineOf('records.jsonl', 'stream-a-0001', 4), stream: 'stream-a-0001', seq: 2,
      reason: 'seq 2 of stream stream-a-0001 is in the store and within the export\'s filter, yet the bundle leaves it out (seqs 2–3)',
    });
    expect(verdict.problems.map((p) => p.seq)).toEqual([2, 3]);

    // The first records of the stream, the head moved past them.
    rmSync(out, { recursive: true });
    writeExportBundle(store, { dir: out, format: 'jsonl', collectorVersion: '9.9.9', filter: { hostId: 'h1' } });
    editRecords(out, 'records.jsonl', withoutSeqs('stream-a-0001', [1]));
    resignBundle(out);
    expect(verifyExport(out).ok).toBe(true);
    expect(altered(verifyExport(out, { store }))).toMatchObject({
      stream: 'stream-a-0001', seq: 1, reason: 'seq 1 of stream stream-a-0001 is in the store and within the export\'s filter, yet the bundle leaves it out: its first seq of the stream is 2',
    });
    expect(a.records.length).toBeGreaterThan(4);
  });

  it('against the store, names the first record of a bundle whose chain was rewritten and re-hashed throughout', () => {
    bundle('jsonl');
    const target = evidence.b.records[1]!;
    editRecords(out, 'records.jsonl', (entries) => {
      let prev: string | undefined;
      return entries.map((entry) => {
        if (entry.stream !== 'stream-b-0001' || entry.seq < 2) return entry;
        const record = { ...(entry.record as Record<string, unknown>) };
        if (entry.seq === 2) record['summary'] = 'nothing happened';
        if (prev !== undefined) record['prev'] = prev;
        record['hash'] = chainHash(record);
        prev = record['hash'] as string;
        return { ...entry, record };
      });
    });
    resignBundle(out);
    // Offline it is a bundle like any other: only the heads, compared with the collector, tell.
    expect(verifyExport(out).ok).toBe(true);
    const verdict = verifyExport(out, { store });
    expect(altered(verdict)).toEqual({
      file: 'records.jsonl', line: lineOf('records.jsonl', 'stream-b-0001', 2), stream: 'stream-b-0001', seq: 2,
      reason: expect.stringMatching(new RegExp(`^the store's seq 2 of stream stream-b-0001 has hash ${target.hash}, the bundle's [0-9a-f]{64}$`)),
    });
  });

  it('against the store, names a record the store does not hold, and seqs left out that the store lacks undeclared', () => {
    const chain = new TestChain('stream-c-0001');
    chain.event();
    chain.event();
    chain.event();
    deliver(store, chain, 'ag-c', [chain.records[0]!, chain.records[2]!]);
    bundle('jsonl');
    // The store lacks seq 2 and nothing declares it: the bundle of everything fails, offline and against the store.
    const verdict = verifyExport(out, { store });
    expect(verdict.problems.filter((p) => p.stream === chain.stream)).toEqual([
      { file: 'records.jsonl', line: lineOf('records.jsonl', chain.stream, 3), stream: chain.stream, seq: 2, reason: 'seq 2 of stream stream-c-0001, left out of the bundle, is not in the store either, and no buffer_dropped declaration in the store covers seq 2' },
      { file: 'records.jsonl', line: lineOf('records.jsonl', chain.stream, 3), stream: chain.stream, seq: 2, reason: everythingLeftOut(2, 2, chain.stream, 'no buffer_dropped declaration in the bundle covers seq 2') },
    ]);

    // A record the bundle holds and the store does not (another collector's, or made up).
    rmSync(out, { recursive: true });
    writeExportBundle(store, { dir: out, format: 'jsonl', collectorVersion: '9.9.9', filter: { hostId: chain.host.id } });
    editRecords(out, 'records.jsonl', (entries) => [...entries.slice(0, 1), { ...entries[0]!, seq: 2, record: chain.records[1] }, ...entries.slice(1)]);
    resignBundle(out);
    expect(verifyExport(out).ok).toBe(true);
    expect(altered(verifyExport(out, { store }))).toEqual({
      file: 'records.jsonl', line: 2, stream: chain.stream, seq: 2, reason: 'the store holds no seq 2 of stream stream-c-0001, yet the bundle does',
    });
  });
});
