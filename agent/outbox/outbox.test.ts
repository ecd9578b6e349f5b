import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import Database from 'better-sqlite3';
import { v7 as uuidv7 } from 'uuid';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chainHash, GENESIS, parseRecord, type AlertRecord } from '../../collector/protocol/index.ts';
import { openOutbox, OutboxError, startCheckpointer, type Outbox, type OutboxInput, type OutboxOptions } from './index.ts';

const host = { id: 'host-1', name: 'hmi-07' };
const WRITER = new URL('./fixtures/writer.ts', import.meta.url).pathname;

let dir: string;
let path: string;
let clock: number;
const open: Outbox[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'omwatch-outbox-'));
  path = join(dir, 'outbox.db');
  clock = Date.UTC(2026, 10, 28, 10);
});

afterEach(() => {
  for (const outbox of open.splice(0)) {
    try {
      outbox.close();
    } catch {
      // A test that broke the disk under it has said what it expected already.
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

function options(overrides: Partial<OutboxOptions> = {}): OutboxOptions {
  return { path, maxBytes: 64 * 1024 * 1024, retainAckedMs: 3_600_000, host, product: 'linux', now: () => clock, ...overrides };
}

function openIt(overrides: Partial<OutboxOptions> = {}) {
  const opened = openOutbox(options(overrides));
  open.push(opened.outbox);
  return opened;
}

function closeIt(outbox: Outbox): void {
  open.splice(open.indexOf(outbox), 1);
  outbox.close();
}

function event(n: number, padding = 0): OutboxInput {
  return {
    id: uuidv7(), time: new Date(clock).toISOString(), host, product: 'linux', category: 'shell_command',
    fields: { SessionId: 'ssh-3f2a9c', User: 'vendor1', CommandLine: `systemctl status plc-gateway --unit ${n}${'x'.repeat(padding)}` },
  };
}

function alert(n: number): AlertRecord {
  return {
    id: uuidv7(), time: new Date(clock).toISOString(), host, eventIds: [uuidv7()], summary: `remote tool outside the window (${n})`,
    rule: { id: 'omwatch-remote-tool', title: 'Remote tool outside a maintenance window', level: 'high', tags: ['attack.t1219'], author: 'omwatch' },
  };
}

interface Stored {
  seq: number;
  kind: string;
  bytes: number;
  record: Record<string, unknown> & { seq: number; hash: string; prev: string; stream: string; id: string };
}

/** Every row of an outbox file, read through a connection of its own. */
function readRows(file = path): Stored[] {
  const db = new Database(file, { readonly: true });
  try {
    const rows = db.prepare('SELECT seq, kind, bytes, json FROM records ORDER BY seq').all() as Array<{ seq: number; kind: string; bytes: number; json: string }>;
    return rows.map((row) => {
      expect(Buffer.byteLength(row.json)).toBe(row.bytes);
      return { seq: row.seq, kind: row.kind, bytes: row.bytes, record: JSON.parse(row.json) as Stored['record'] };
    });
  } finally {
    db.close();
  }
}

function fieldsOf(row: Stored): Record<string, unknown> {
  return row.record['fields'] as Record<string, unknown>;
}

/**
 * Checks what a collector would: every record passes the wire schema and hashes to its `hash`, seqs run
 * from `firstSeq` with each `prev` the hash before it, and every missing seq is covered by exactly one
 * buffer_dropped declaration whose FromPrev/ToHash carry the chain across it. Returns the declarations.
 */
function verifyChain(rows: Stored[], stream: string, firstSeq = 1, firstPrev = GENESIS) {
  const problems: string[] = [];
  const bySeq = new Map(rows.map((row) => [row.seq, row]));
  const declarations = new Map<number, { from: number; to: number; count: number; fromPrev: string; toHash: string }>();
  for (const row of rows) {
    const parsed = parseRecord(row.record);
    if (!parsed.ok) problems.push(`seq ${row.seq} fails the wire schema: ${parsed.error}`);
    if (row.record.stream !== stream || row.record.seq !== row.seq) problems.push(`seq ${row.seq} names stream ${row.record.stream}, seq ${row.record.seq}`);
    if (chainHash(row.record) !== row.record.hash) problems.push(`seq ${row.seq} does not hash to its hash`);
    const fields = fieldsOf(row);
    if (row.kind === 'declaration' && fields?.['Action'] === 'buffer_dropped' && fields['FromSeq'] !== undefined) {
      const from = fields['FromSeq'] as number;
      if (declarations.has(from)) problems.push(`two declarations start at seq ${from}`);
      declarations.set(from, { from, to: fields['ToSeq'] as number, count: fields['Count'] as number, fromPrev: fields['FromPrev'] as string, toHash: fields['ToHash'] as string });
    }
  }
  const last = Math.max(0, ...rows.map((row) => row.seq));
  let prev = firstPrev;
  for (let seq = firstSeq; seq <= last;) {
    const row = bySeq.get(seq);
    if (row) {
      if (row.record.prev !== prev) problems.push(`seq ${seq}: prev ${row.record.prev}, but the record before it hashes to ${prev}`);
      prev = row.record.hash;
      seq++;
      continue;
    }
    const declared = declarations.get(seq);
    if (!declared) {
      problems.push(`seq ${seq} is missing and no buffer_dropped declares it`);
      break;
    }
    if (declared.count !== declared.to - declared.from + 1) problems.push(`the drop at ${seq} counts ${declared.count} for ${declared.from}–${declared.to}`);
    if (declared.fromPrev !== prev) problems.push(`the drop at ${seq} has FromPrev ${declared.fromPrev}, but the record before it hashes to ${prev}`);
    for (let gone = declared.from; gone <= declared.to; gone++) if (bySeq.has(gone)) problems.push(`seq ${gone} is declared dropped but stored`);
    prev = declared.toHash;
    seq = declared.to + 1;
  }
  expect(problems).toEqual([]);
  return [...declarations.values()];
}

/** The outbox's counters against what the file holds. */
function expectStatsTrue(outbox: Outbox): void {
  const rows = readRows();
  const db = new Database(path, { readonly: true });
  const acked = db.prepare('SELECT acked_seq FROM meta').pluck().get() as number;
  db.close();
  const stats = outbox.stats();
  expect(stats.rows).toBe(rows.length);
  expect(stats.bytes).toBe(rows.reduce((sum, row) => sum + row.bytes, 0));
  expect(stats.ackedSeq).toBe(acked);
  expect(stats.unacked).toBe(rows.filter((row) => row.seq > acked).length);
  expect(stats.unackedBytes).toBe(rows.filter((row) => row.seq > acked).reduce((sum, row) => sum + row.bytes, 0));
}

describe('openOutbox', () => {
  it('numbers records gap-free from 1 and goes on with the same stream and chain after a reopen', () => {
    const { outbox, reset } = openIt();
    expect(reset).toBeUndefined();
    expect(outbox.stream).toMatch(/^[A-Za-z0-9_-]{8,64}$/);
    for (let i = 0; i < 10; i++) outbox.append(event(i));
    outbox.append(alert(10));
    expect(outbox.stats()).toMatchObject({ rows: 0, queued: 11, lastSeq: 0 });
    expect(outbox.flush()).toBe(11);
    const stream = outbox.stream;
    closeIt(outbox);

    const again = openIt().outbox;
    expect(again.stream).toBe(stream);
    expect(again.stats()).toMatchObject({ rows: 11, unacked: 11, lastSeq: 11, ackedSeq: 0 });
    for (let i = 11; i < 15; i++) again.append(event(i));
    expect(again.flush()).toBe(15);

    const rows = readRows();
    expect(rows.map((row) => row.seq)).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));
    expect(rows.map((row) => row.kind)).toEqual([...Array(10).fill('event'), 'alert', ...Array(4).fill('event')]);
    expect(verifyChain(rows, stream)).toEqual([]);
    // What pending() hands the uplink is the stored JSON, verbatim.
    expect(again.pending(0, 100, 1 << 20).map((row) => JSON.parse(row.json))).toEqual(rows.map((row) => row.record));
    expectStatsTrue(again);
  });

  it('gives a new file a new stream id', () => {
    const first = openIt().outbox.stream;
    const other = openOutbox(options({ path: join(dir, 'other.db') })).outbox;
    open.push(other);
    expect(other.stream).not.toBe(first);
  });

  it('refuses unusable options, saying which and what it got', () => {
    expect(() => openOutbox(options({ maxBytes: 0 }))).toThrow(/expected maxBytes to be a positive integer, got 0/);
    expect(() => openOutbox(options({ maxQueued: 1.5 }))).toThrow(/expected maxQueued to be a positive integer, got 1.5/);
    expect(() => openOutbox(options({ host: { id: '', name: 'x' } }))).toThrow(OutboxError);
    expect(existsSync(path)).toBe(false);
  });

  it('leaves a file of a newer schema alone', () => {
    openIt().outbox.append(event(1));
    closeIt(open[0]!);
    const db = new Database(path);
    db.prepare('UPDATE meta SET schema_version = 99').run();
    db.close();
    expect(() => openOutbox(options())).toThrow(expect.objectContaining({ code: 'OUTBOX_SCHEMA' }));
    expect(readdirSync(dir).filter((name) => name.includes('corrupt'))).toEqual([]);
  });
});

describe('flushing', () => {
  it('flushes by timer, with no call', async () => {
    const { outbox } = openIt({ flushIntervalMs: 5 });
    const flushed = new Promise<number>((resolve) => outbox.onFlush(resolve));
    outbox.append(event(1));
    outbox.append(event(2));
    expect(await flushed).toBe(2);
    expect(outbox.stats()).toMatchObject({ rows: 2, queued: 0 });
  });

  it('flushes when maxQueued records wait, in one transaction', () => {
    const { outbox } = openIt({ maxQueued: 3, flushIntervalMs: 60_000 });
    const seen: number[] = [];
    outbox.onFlush((lastSeq) => seen.push(lastSeq));
    for (let i = 0; i < 7; i++) outbox.append(event(i));
    expect(seen).toEqual([3, 6]);
    expect(outbox.stats()).toMatchObject({ rows: 6, queued: 1 });
  });

  it('writes what is queued on close, and refuses appends after', () => {
    const { outbox } = openIt({ flushIntervalMs: 60_000 });
    for (let i = 0; i < 3; i++) outbox.append(event(i));
    closeIt(outbox);
    expect(readRows().map((row) => row.seq)).toEqual([1, 2, 3]);
    expect(() => outbox.append(event(4))).toThrow(expect.objectContaining({ code: 'OUTBOX_CLOSED' }));
  });

  it('drops and declares a record with no JSON form instead of blocking the others', () => {
    const { outbox } = openIt();
    outbox.append(event(1));
    const bad = { ...event(2), category: 'process_creation', fields: { ProcessId: Number.NaN, Image: '/usr/bin/x', CommandLine: 'x', ParentProcessId: 1 } } as OutboxInput;
    outbox.append(bad);
    outbox.append(event(3));
    expect(outbox.flush()).toBe(3);
    const rows = readRows();
    expect(rows.map((row) => row.kind)).toEqual(['event', 'event', 'declaration']);
    expect(fieldsOf(rows[2]!)).toMatchObject({ Action: 'buffer_dropped', Count: 1 });
    expect(fieldsOf(rows[2]!)['Message']).toContain(bad.id);
    expect(outbox.stats().dropped).toBe(1);
    verifyChain(rows, outbox.stream);
  });
});

describe('pending and ack', () => {
  it('returns unacked rows after a seq, within a row limit and about a byte budget', () => {
    const { outbox } = openIt();
    for (let i = 0; i < 20; i++) outbox.append(event(i));
    outbox.flush();
    const seqs = (rows: Array<{ seq: number }>) => rows.map((row) => row.seq);
    expect(seqs(outbox.pending(0, 5, 1 << 20))).toEqual([1, 2, 3, 4, 5]);
    expect(seqs(outbox.pending(15, 100, 1 << 20))).toEqual([16, 17, 18, 19, 20]);
    expect(seqs(outbox.pending(20, 100, 1 << 20))).toEqual([]);
    expect(outbox.pending(0, 0, 1 << 20)).toEqual([]);
    // Always at least one row, even past the budget; otherwise no row beyond it.
    expect(seqs(outbox.pending(0, 100, 1))).toEqual([1]);
    const three = outbox.pending(0, 3, 1 << 20).reduce((sum, row) => sum + Buffer.byteLength(row.json), 0);
    expect(seqs(outbox.pending(0, 100, three))).toEqual([1, 2, 3]);
    expect(seqs(outbox.pending(0, 100, three - 1))).toEqual([1, 2]);
    outbox.ack(10);
    expect(seqs(outbox.pending(0, 3, 1 << 20))).toEqual([11, 12, 13]);
    expect(seqs(outbox.pending(12, 3, 1 << 20))).toEqual([13, 14, 15]);
  });

  it('acks cumulatively, persists the mark, and never past the last written seq', () => {
    const { outbox } = openIt({ flushIntervalMs: 60_000 });
    for (let i = 0; i < 20; i++) outbox.append(event(i));
    outbox.flush();
    outbox.ack(10);
    outbox.ack(4);
    expect(outbox.stats()).toMatchObject({ ackedSeq: 10, unacked: 10, rows: 20 });
    outbox.append(event(20));
    outbox.ack(500);
    expect(outbox.stats()).toMatchObject({ ackedSeq: 20, unacked: 0, queued: 1 });
    expect(() => outbox.ack(-1)).toThrow(RangeError);
    expect(() => outbox.ack(2.5)).toThrow(RangeError);
    expectStatsTrue(outbox);
    closeIt(outbox);
    const again = openIt().outbox;
    expect(again.stats()).toMatchObject({ ackedSeq: 20, unacked: 1, lastSeq: 21, rows: 21 });
    const db = new Database(path, { readonly: true });
    expect(db.prepare('SELECT MAX(upto) FROM acks').pluck().get()).toBe(20);
    db.close();
  });

  it('folds its WAL into the database on a thread of its own: the writer never checkpoints, the file grows while open', async () => {
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE t (x BLOB)');
    const worker = startCheckpointer(db, path)!;
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(0);
    const insert = db.prepare('INSERT INTO t VALUES (?)');
    for (let i = 0; i < 100; i++) insert.run(Buffer.alloc(80_000, i));
    // 8 MB in the WAL; only the checkpointer thread can move it into the database file.
    const deadline = Date.now() + 15_000;
    while (statSync(path).size < 7_000_000) {
      if (Date.now() > deadline) throw new Error(`the database file stayed at ${statSync(path).size} bytes: no checkpoint in 15 s`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // Without its thread the writer checkpoints itself again, as SQLite does by default.
    await worker.terminate();
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(1_000);
    db.close();
  });

  it('opens a version 1 outbox (ack times in the rows), keeps its acks and its retention, and upgrades it', () => {
    const { outbox } = openIt({ retainAckedMs: 60_000 });
    for (let i = 0; i < 10; i++) outbox.append(event(i));
    outbox.flush();
    closeIt(outbox);
    // Rewritten as an agent of version 1 left it: rows 1–4 acked at one time, 5–6 at a later one.
    const v1 = new Database(path);
    v1.exec('DROP TABLE acks; ALTER TABLE records ADD COLUMN acked_at INTEGER');
    v1.prepare('UPDATE records SET acked_at = ? WHERE seq <= 4').run(clock - 70_000);
    v1.prepare('UPDATE records SET acked_at = ? WHERE seq BETWEEN 5 AND 6').run(clock - 10_000);
    v1.prepare('UPDATE meta SET schema_version = 1, acked_seq = 6').run();
    v1.close();
    const again = openIt({ retainAckedMs: 60_000 }).outbox;
    expect(again.stats()).toMatchObject({ ackedSeq: 6, unacked: 4, rows: 10 });
    again.append(event(10));
    again.flush();
    // Rows 1–4 were acked 70 s ago: gone at the first flush; 5–6 stay until their 60 s are up.
    expect(readRows().map((row) => row.seq)).toEqual([5, 6, 7, 8, 9, 10, 11]);
    expect(again.pending(0, 100, 1e9).map((row) => row.seq)).toEqual([7, 8, 9, 10, 11]);
    closeIt(again);
    const db = new Database(path, { readonly: true });
    expect(db.prepare('SELECT schema_version FROM meta').pluck().get()).toBe(2);
    db.close();
  });

  it('deletes acked rows once retainAckedMs has passed since their ack, and keeps the chain across reopen', () => {
    const { outbox } = openIt({ retainAckedMs: 60_000 });
    for (let i = 0; i < 10; i++) outbox.append(event(i));
    outbox.flush();
    outbox.ack(5);
    clock += 30_000;
    outbox.ack(8);
    outbox.append(event(10));
    outbox.flush();
    expect(outbox.stats().rows).toBe(11);
    clock += 30_001;
    outbox.append(event(11));
    outbox.flush();
    // Rows 1–5 were acked 60.001 s ago; 6–8 only 30 s ago.
    expect(readRows().map((row) => row.seq)).toEqual([6, 7, 8, 9, 10, 11, 12]);
    expectStatsTrue(outbox);
    clock += 500;
    outbox.ack(12);
    clock += 30_000;
    outbox.append(event(12));
    outbox.flush();
    expect(readRows()[0]!.seq).toBe(9);
    clock += 60_001;
    outbox.append(event(13));
    outbox.ack(13);
    outbox.append(event(14));
    clock += 60_001;
    outbox.flush();
    // Everything acked up to 13 is gone; 14 and 15 were written after the ack.
    expect(readRows().map((row) => row.seq)).toEqual([14, 15]);
    expectStatsTrue(outbox);
    closeIt(outbox);
    clock += 60_001;
    const again = openIt({ retainAckedMs: 60_000 }).outbox;
    again.ack(15);
    again.append(event(15));
    clock += 60_001;
    again.append(event(16));
    again.flush();
    const rows = readRows();
    expect(rows.map((row) => row.seq)).toEqual([16, 17]);
    expect(chainHash(rows[0]!.record)).toBe(rows[0]!.record.hash);
    expect(rows[1]!.record.prev).toBe(rows[0]!.record.hash);
    expect(again.stats()).toMatchObject({ lastSeq: 17, rows: 2, unacked: 2 });
  });
});

describe('the byte cap', () => {
  it('drops the oldest plain events, keeps every alert, and declares exactly what went', () => {
    const maxBytes = 120_000;
    const { outbox } = openIt({ maxBytes, flushIntervalMs: 60_000 });
    const alertIds = new Set<string>();
    const eventSeqs: number[] = [];
    let appended = 0;
    for (let batch = 0; batch < 10; batch++) {
      for (let i = 0; i < 100; i++) {
        appended++;
        if (appended % 40 === 0) {
          const a = alert(appended);
          alertIds.add(a.id);
          outbox.append(a);
        } else {
          outbox.append(event(appended, appended % 7 === 0 ? 300 : 0));
        }
      }
      outbox.flush();
      expect(outbox.stats().bytes).toBeLessThanOrEqual(maxBytes);
    }
    const rows = readRows();
    const declarations = verifyChain(rows, outbox.stream);
    expect(declarations.length).toBeGreaterThan(1);

    // Every alert is still there.
    expect(rows.filter((row) => row.kind === 'alert').map((row) => row.record.id).toSorted()).toEqual([...alertIds].toSorted());
    // The dropped seqs are exactly the declared ones, no two declarations overlap, and the counts add up.
    const stored = new Set(rows.map((row) => row.seq));
    const missing: number[] = [];
    for (let seq = 1; seq <= outbox.stats().lastSeq; seq++) if (!stored.has(seq)) missing.push(seq);
    const declared = declarations.flatMap((d) => Array.from({ length: d.count }, (_, i) => d.from + i)).toSorted((a, b) => a - b);
    expect(declared).toEqual(missing);
    expect(declarations.reduce((sum, d) => sum + d.count, 0)).toBe(outbox.stats().dropped);
    // Oldest first: every plain event still stored is newer than every dropped record.
    for (const row of rows) if (row.kind === 'event') eventSeqs.push(row.seq);
    expect(Math.min(...eventSeqs)).toBeGreaterThan(Math.max(...missing));
    // No declaration was dropped while events remained.
    const declarationSeqs = new Set(rows.filter((row) => row.kind === 'declaration').map((row) => row.seq));
    expect(declarationSeqs.size).toBe(declarations.length);
    expectStatsTrue(outbox);
  });

  it('deletes acked rows before dropping anything unacked', () => {
    const maxBytes = 40_000;
    const { outbox } = openIt({ maxBytes });
    for (let i = 0; i < 60; i++) outbox.append(event(i));
    outbox.flush();
    outbox.ack(60);
    const perRow = outbox.stats().bytes / 60;
    // Enough new rows to pass the cap, not enough to need more than the acked rows' room.
    const more = Math.floor((maxBytes - outbox.stats().bytes) / perRow) + 10;
    for (let i = 0; i < more; i++) outbox.append(event(60 + i));
    outbox.flush();
    const rows = readRows();
    expect(rows.some((row) => row.kind === 'declaration')).toBe(false);
    expect(outbox.stats()).toMatchObject({ dropped: 0, unacked: more });
    expect(outbox.stats().bytes).toBeLessThanOrEqual(maxBytes * 0.9);
    expect(rows.at(-1)!.seq).toBe(60 + more);
    expect(rows.filter((row) => row.seq <= 60).length).toBeGreaterThan(0);
    verifyChain(rows.filter((row) => row.seq > 60), outbox.stream, 61, rows.find((row) => row.seq === 61)!.record.prev);
    expectStatsTrue(outbox);
  });

  it('drops alerts, oldest first, only when no plain event is left, and names them in the declaration', () => {
    const maxBytes = 12_000;
    const { outbox } = openIt({ maxBytes, flushIntervalMs: 60_000 });
    for (let i = 0; i < 10; i++) outbox.append(event(i));
    for (let i = 0; i < 40; i++) outbox.append(alert(i));
    outbox.flush();
    const rows = readRows();
    const declarations = verifyChain(rows, outbox.stream);
    expect(rows.filter((row) => row.kind === 'event')).toEqual([]);
    const alerts = rows.filter((row) => row.kind === 'alert').map((row) => row.seq);
    expect(alerts.length).toBeGreaterThan(0);
    // The surviving alerts are the newest ones, 11–50 being the alerts' seqs.
    expect(alerts).toEqual(Array.from({ length: alerts.length }, (_, i) => 51 - alerts.length + i));
    expect(declarations.reduce((sum, d) => sum + d.count, 0)).toBe(50 - alerts.length);
    const messages = rows.filter((row) => row.kind === 'declaration').map((row) => fieldsOf(row)['Message'] as string);
    expect(messages.join(' ')).toMatch(/of them alerts/);
    expect(outbox.stats().bytes).toBeLessThanOrEqual(maxBytes);
  });

  it('carries the ranges of dropped declarations on when the cap is so small that only declarations fit', () => {
    const { outbox } = openIt({ maxBytes: 1_000, flushIntervalMs: 60_000 });
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 10; i++) outbox.append(event(round * 10 + i));
      outbox.flush();
    }
    const rows = readRows();
    // The cap is below two declarations: each flush drops all it may, the earlier declaration included,
    // and the one it writes declares both what it dropped and what the dropped declaration had declared.
    expect(rows.map((row) => row.kind)).toEqual(['declaration']);
    const declarations = verifyChain(rows, outbox.stream);
    expect(declarations).toEqual([expect.objectContaining({ from: 1, to: outbox.stats().lastSeq - 1, count: outbox.stats().lastSeq - 1, fromPrev: GENESIS })]);
    expect(outbox.stats().dropped).toBe(outbox.stats().lastSeq - 1);
    expect(fieldsOf(rows[0]!)['Message']).toMatch(/dropped before and declared by records now dropped too/);
  });
});

describe('a corrupt file', () => {
  function expectReset(opened: ReturnType<typeof openIt>, reason: RegExp, previousStream?: string) {
    const { outbox, reset } = opened;
    expect(reset).toBeDefined();
    expect(reset!.reason).toMatch(reason);
    expect(reset!.movedTo).toMatch(/outbox\.db\.corrupt-\d{4}-\d\d-\d\dT\d{6}\.\d{3}Z$/);
    expect(existsSync(reset!.movedTo)).toBe(true);
    const rows = readRows();
    expect(rows).toHaveLength(1);
    expect(rows[0]!.seq).toBe(1);
    expect(rows[0]!.kind).toBe('declaration');
    const expected: Record<string, unknown> = { Action: 'outbox_reset', Message: reset!.reason, Path: reset!.movedTo };
    if (previousStream) expected['PreviousStream'] = previousStream;
    expect(fieldsOf(rows[0]!)).toEqual(expected);
    verifyChain(rows, outbox.stream);
    // The new stream goes on as usual.
    outbox.append(event(1));
    expect(outbox.flush()).toBe(2);
    expect(outbox.stream).not.toBe(previousStream);
    return reset!;
  }

  it('sets a file of garbage aside, with its WAL, and starts a new stream', () => {
    const garbage = Buffer.alloc(16_384, 0x5a);
    writeFileSync(path, garbage);
    writeFileSync(`${path}-wal`, Buffer.alloc(4_096, 0x33));
    const reset = expectReset(openIt(), /SQLITE_NOTADB/);
    expect(readFileSync(reset.movedTo)).toEqual(garbage);
    expect(existsSync(`${reset.movedTo}-wal`)).toBe(true);
  });

  it('sets a truncated outbox aside', () => {
    const first = openIt().outbox;
    for (let i = 0; i < 2_000; i++) first.append(event(i));
    first.flush();
    closeIt(first);
    const size = statSync(path).size;
    truncateSync(path, Math.floor(size / 2));
    const reset = expectReset(openIt(), /malformed|SQLITE_CORRUPT|quick_check/);
    expect(statSync(reset.movedTo).size).toBe(Math.floor(size / 2));
  });

  it('sets aside a file whose pages fail quick_check, naming the stream that ended', () => {
    const first = openIt().outbox;
    for (let i = 0; i < 2_000; i++) first.append(event(i));
    first.flush();
    const stream = first.stream;
    closeIt(first);
    // Scribble over a page in the middle of the records, away from the schema and meta pages.
    const fd = openSync(path, 'r+');
    writeSync(fd, Buffer.alloc(4_096, 0xee), 0, 4_096, 100 * 4_096 + 8);
    closeSync(fd);
    const reset = expectReset(openIt(), /quick_check|malformed|SQLITE_CORRUPT/, stream);
    expect(readFileSync(reset.movedTo).subarray(100 * 4_096 + 8, 101 * 4_096 + 8)).toEqual(Buffer.alloc(4_096, 0xee));
  });

  it('takes an empty file as a new outbox, not a corrupt one', () => {
    writeFileSync(path, '');
    const { outbox, reset } = openIt();
    expect(reset).toBeUndefined();
    outbox.append(event(1));
    expect(outbox.flush()).toBe(1);
  });
});

describe('crash safety', () => {
  /** Runs the writer fixture until it has committed at least `untilSeq`, kills it with SIGKILL, returns its last report. */
  async function runAndKill(untilSeq: number) {
    const child = spawn(process.execPath, ['--import', 'tsx', WRITER, path], { cwd: new URL('../..', import.meta.url).pathname, stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = once(child, 'exit');
    let last = { stream: '', lastSeq: 0, ackedSeq: 0 };
    for await (const line of createInterface({ input: child.stdout! })) {
      const [stream, lastSeq, ackedSeq] = line.split(' ');
      last = { stream: stream!, lastSeq: Number(lastSeq), ackedSeq: Number(ackedSeq) };
      if (last.lastSeq >= untilSeq) {
        child.kill('SIGKILL');
        break;
      }
    }
    const [code, signal] = await exited;
    expect({ code, signal }).toEqual({ code: null, signal: 'SIGKILL' });
    return last;
  }

  it('loses nothing committed or acked when the writer is SIGKILLed mid-writes, twice', async () => {
    const first = await runAndKill(3_000);
    const second = await runAndKill(first.lastSeq + 3_000);
    expect(second.stream).toBe(first.stream);

    const { outbox, reset } = openIt();
    expect(reset).toBeUndefined();
    expect(outbox.stream).toBe(first.stream);
    const stats = outbox.stats();
    expect(stats.lastSeq).toBeGreaterThanOrEqual(second.lastSeq);
    expect(stats.ackedSeq).toBeGreaterThanOrEqual(second.ackedSeq);
    const rows = readRows();
    // Gap-free from 1: nothing was dropped, and nothing acked was deleted (retention is an hour).
    expect(rows.map((row) => row.seq)).toEqual(Array.from({ length: stats.lastSeq }, (_, i) => i + 1));
    expect(verifyChain(rows, first.stream)).toEqual([]);
    outbox.append(event(0));
    expect(outbox.flush()).toBe(stats.lastSeq + 1);
    expect(readRows().at(-1)!.record.prev).toBe(rows.at(-1)!.record.hash);
  }, 60_000);
});

// A real full disk: a tiny tmpfs, which only root can mount.
const canMount = (() => {
  if (process.getuid?.() !== 0) return false;
  const probe = mkdtempSync(join(tmpdir(), 'omwatch-mount-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe], { stdio: 'ignore' });
    execFileSync('umount', [probe], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
})();

describe.skipIf(!canMount)('a full disk (tmpfs, as root)', () => {
  let mountPoint: string;

  beforeEach(() => {
    mountPoint = join(dir, 'disk');
    mkdirSync(mountPoint);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mountPoint]);
    path = join(mountPoint, 'outbox.db');
  });

  afterEach(() => {
    for (const outbox of open.splice(0)) {
      try {
        outbox.close();
      } catch {
        // Closing on a full disk may fail to write; the test has checked what it needed.
      }
    }
    execFileSync('umount', [mountPoint]);
  });

  /** Fills the disk with a file, leaving about `leaveBytes` free; returns the file to delete. */
  function fill(leaveBytes: number): string {
    const filler = join(mountPoint, 'filler');
    const free = statfsFree(mountPoint);
    writeFileSync(filler, Buffer.alloc(Math.max(0, free - leaveBytes)));
    return filler;
  }

  it('keeps records queued while writes fail, says why, bounds the queue, and declares what it shed', () => {
    const { outbox } = openIt({ maxQueued: 20, flushIntervalMs: 60_000 });
    const filler = fill(96 * 1024);
    let failure: unknown;
    let appended = 0;
    while (failure === undefined && appended < 20_000) {
      for (let i = 0; i < 20; i++) outbox.append(event(appended++, 400));
      try {
        outbox.flush();
      } catch (error) {
        failure = error;
      }
    }
    expect(failure).toBeInstanceOf(OutboxError);
    expect((failure as OutboxError).code).toBe('OUTBOX_FULL');
    expect((failure as OutboxError).message).toMatch(/flush failed \(SQLITE_FULL\), \d+ records kept queued/);
    const written = outbox.stats().lastSeq;
    expect(outbox.stats().queued).toBe(appended - written);
    expect(outbox.stats().writeError).toMatchObject({ code: 'OUTBOX_FULL' });

    // Appends go on (no throw); past 10 × maxQueued the oldest plain events of the queue go.
    for (let i = 0; i < 400; i++) outbox.append(event(appended++, 400));
    const { queued, dropped } = outbox.stats();
    expect(queued).toBeDefined();
    expect(queued!).toBeLessThanOrEqual(200);
    expect(dropped).toBe(appended - written - queued!);
    expect(dropped).toBeGreaterThan(0);

    rmSync(filler);
    outbox.flush();
    expect(outbox.stats().writeError).toBeUndefined();
    expect(outbox.stats().queued).toBe(0);
    const rows = readRows();
    verifyChain(rows, outbox.stream);
    expect(rows.map((row) => row.seq)).toEqual(Array.from({ length: rows.length }, (_, i) => i + 1));
    const declaration = rows.at(-1)!;
    expect(fieldsOf(declaration)).toMatchObject({ Action: 'buffer_dropped', Count: dropped });
    expect(fieldsOf(declaration)['Message']).toMatch(/SQLITE_FULL|disk/);
    // Everything appended is either written or declared.
    expect(rows.length - 1 + dropped).toBe(appended);
  });
});

function statfsFree(folder: string): number {
  const out = execFileSync('df', ['-B1', '--output=avail', folder], { encoding: 'utf8' });
  return Number(out.trim().split('\n').at(-1));
}
