// bench:outbox — events per second appended and flushed through the agent's outbox (numbering, RFC 8785
// hash chain, SQLite WAL), on one core, beside raw better-sqlite3 inserts of the same rows (the floor: an
// outbox at least writes its rows). Prints progress on stderr and one JSON line last on stdout.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { chainHash, GENESIS, parseRecord } from '../../collector/protocol/index.ts';
import { openOutbox, type OutboxInput } from '../../agent/outbox/index.ts';
import { makeEvents } from './events.ts';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '100000' },
    rounds: { type: 'string', default: '3' },
    dir: { type: 'string', default: tmpdir() },
  },
});
const EVENTS = Number(values.events);
const ROUNDS = Number(values.rounds);
/** The outbox's default maxQueued: its transaction size, which the raw inserts copy. */
const BLOCK = 2_000;

function say(message: string): void {
  process.stderr.write(`${message}\n`);
}

function median(samples: number[]): number {
  const sorted = samples.toSorted((a, b) => a - b);
  return sorted[sorted.length >> 1]!;
}

// The rules bench's events, as the agent hands them to the outbox: the envelope with host and product,
// minus the fields a sensor leaves out (undefined), which neither JSON nor the chain carries.
const events: OutboxInput[] = makeEvents(EVENTS).map((event) => ({
  id: event.id, time: event.time, host: { id: 'bench-host', name: 'hmi-07' }, category: event.category, product: 'linux',
  fields: Object.fromEntries(Object.entries(event.fields).filter(([, value]) => value !== undefined)),
}) as OutboxInput);

const folder = mkdtempSync(join(values.dir, 'omwatch-bench-outbox-'));
say(`${EVENTS} events, ${ROUNDS} rounds, files in ${folder}`);

/** The outbox's records table and pragmas, for the raw inserts. */
function rawDatabase(path: string): Database.Database {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.pragma('journal_size_limit = 16777216');
  db.exec(`CREATE TABLE records (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('event', 'alert', 'declaration')),
    bytes INTEGER NOT NULL,
    acked_at INTEGER,
    json TEXT NOT NULL
  )`);
  return db;
}

/** Appends `count` events through a new outbox; the last of each BLOCK appends flushes the queue in one transaction. */
function outboxRun(path: string, count: number): number {
  const { outbox } = openOutbox({
    path, maxBytes: 4 * 1024 * 1024 * 1024, retainAckedMs: 3_600_000, host: { id: 'bench-host', name: 'hmi-07' }, product: 'linux',
    flushIntervalMs: 60_000, maxQueued: BLOCK,
  });
  const began = process.hrtime.bigint();
  for (let i = 0; i < count; i++) outbox.append(events[i]!);
  outbox.flush();
  const ns = process.hrtime.bigint() - began;
  if (outbox.stats().lastSeq !== count) throw new Error(`the outbox wrote ${outbox.stats().lastSeq} rows, expected ${count}`);
  outbox.close();
  return count / (Number(ns) / 1e9);
}

/** Inserts the rows an outbox wrote into a plain table of the same shape, BLOCK rows per transaction. */
function rawRun(path: string, rows: ReadonlyArray<{ seq: number; kind: string; bytes: number; json: string }>): number {
  const raw = rawDatabase(path);
  const insert = raw.prepare('INSERT INTO records (seq, kind, bytes, json) VALUES (?, ?, ?, ?)');
  const insertBlock = raw.transaction((start: number, end: number) => {
    for (let i = start; i < end; i++) {
      const row = rows[i]!;
      insert.run(row.seq, row.kind, row.bytes, row.json);
    }
  });
  const began = process.hrtime.bigint();
  for (let start = 0; start < rows.length; start += BLOCK) insertBlock(start, Math.min(start + BLOCK, rows.length));
  const ns = process.hrtime.bigint() - began;
  raw.close();
  return rows.length / (Number(ns) / 1e9);
}

function removeDatabase(path: string): void {
  for (const suffix of ['', '-wal', '-shm']) rmSync(`${path}${suffix}`, { force: true });
}

// Warm-up, not counted: the agent is a long-running process, so what matters is its steady state once
// the JIT has compiled the serializer and the statement paths. Its rows are what the raw inserts write:
// outbox rows as stored (each round's own outbox differs only in its stream id and hashes).
const warmPath = join(folder, 'warm-up.db');
outboxRun(warmPath, EVENTS);
const rows = (() => {
  const db = new Database(warmPath, { readonly: true });
  const all = db.prepare('SELECT seq, kind, bytes, json FROM records ORDER BY seq').all() as Array<{ seq: number; kind: string; bytes: number; json: string }>;
  db.close();
  return all;
})();
rawRun(join(folder, 'warm-up-raw.db'), rows.slice(0, 20_000));
say(`warm-up: ${rows.length} rows, ${Math.round(rows.reduce((sum, row) => sum + row.bytes, 0) / rows.length)} bytes each on average`);

// Each round runs both, one after the other, in alternating order: this VM's disk and memory speed drift
// over seconds, and two files written at once would share each other's fsyncs (ext4 commits them together).
const outboxRates: number[] = [];
const rawRates: number[] = [];
let lastPath = '';
for (let r = 1; r <= ROUNDS; r++) {
  const outboxPath = join(folder, `round-${r}-outbox.db`);
  const rawPath = join(folder, `round-${r}-raw.db`);
  let outboxPerSec: number;
  let rawPerSec: number;
  if (r % 2 === 1) {
    outboxPerSec = outboxRun(outboxPath, EVENTS);
    rawPerSec = rawRun(rawPath, rows);
  } else {
    rawPerSec = rawRun(rawPath, rows);
    outboxPerSec = outboxRun(outboxPath, EVENTS);
  }
  outboxRates.push(outboxPerSec);
  rawRates.push(rawPerSec);
  if (lastPath) removeDatabase(lastPath);
  removeDatabase(rawPath);
  lastPath = outboxPath;
  say(`round ${r}: ${Math.round(outboxPerSec)} events/s through the outbox, ${Math.round(rawPerSec)} raw inserts/s (${(outboxPerSec / rawPerSec).toFixed(2)}×)`);
}

// What was measured is the real thing: every row of the last round is a valid wire record, numbered 1..N
// and chained.
{
  const db = new Database(lastPath, { readonly: true });
  let prev = GENESIS;
  let seq = 0;
  for (const row of db.prepare("SELECT seq, json FROM records WHERE kind = 'event' ORDER BY seq").iterate() as IterableIterator<{ seq: number; json: string }>) {
    const record = JSON.parse(row.json) as Record<string, unknown>;
    if (row.seq !== ++seq || record['prev'] !== prev || chainHash(record) !== record['hash']) throw new Error(`seq ${row.seq}: the chain does not verify`);
    if (seq <= 1_000) {
      const parsed = parseRecord(record);
      if (!parsed.ok) throw new Error(`seq ${row.seq} is not a valid wire record: ${parsed.error}`);
    }
    prev = record['hash'] as string;
  }
  db.close();
  if (seq !== EVENTS) throw new Error(`the outbox holds ${seq} events, expected ${EVENTS}`);
  say(`verified: ${seq} rows, seqs 1..${seq}, chain intact, wire schema valid (first 1,000)`);
}
rmSync(folder, { recursive: true, force: true });

const outboxPerSec = Math.round(median(outboxRates));
const rawInsertPerSec = Math.round(median(rawRates));
say(`median: ${outboxPerSec} events/s through the outbox, ${rawInsertPerSec} raw inserts/s, ratio ${(outboxPerSec / rawInsertPerSec).toFixed(2)}`);
process.stdout.write(`${JSON.stringify({ outboxPerSec, rawInsertPerSec })}\n`);
