// The collector unreachable while the agent keeps producing: everything arrives after healing; with a
// small byte cap, the oldest plain events are dropped, alerts kept, and every drop declared exactly.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { AGENT_BIN, cli, COLLECTOR_BIN, createToken, freePort, PRODUCER, start, startCollector } from './helpers/delivery.ts';

interface Row {
  seq: number;
  kind: string;
  body: string;
}

async function partitioned(maxBytes: number) {
  const root = mkdtempSync(join(tmpdir(), 'omwatch-partition-'));
  const collectorData = join(root, 'collector');
  const agentData = join(root, 'agent');
  const port = await freePort();
  const collector = await startCollector(collectorData, port);
  const token = createToken(collectorData, 'enroll');
  expect(cli(AGENT_BIN, ['enroll', '--collector', collector.url, '--token', token, '--data', agentData]).status).toBe(0);
  // The partition: the collector is stopped before the agent produces anything.
  collector.child.kill('SIGTERM');
  await collector.exited;

  const producer = start([process.execPath, '--import', 'tsx', PRODUCER, '--data', agentData, '--rate', '25000', '--count', '50000', '--alert-every', '100', '--max-bytes', String(maxBytes)]);
  const ready = await producer.waitLine(/^ready (\S+)/);
  await producer.waitLine(/^appended 50000$/, 60_000);
  // Healed: the collector is back on the same address.
  const healed = await startCollector(collectorData, port);
  const drained = await producer.waitLine(/^drained (\d+)/, 90_000);
  producer.child.kill('SIGTERM');
  await producer.exited;
  healed.child.kill('SIGTERM');
  await healed.exited;
  const db = new Database(join(collectorData, 'collector.db'), { readonly: true });
  const rows = db.prepare('SELECT seq, kind, body FROM records WHERE stream = ? ORDER BY seq').all(ready[1]!) as Row[];
  // Every gap the collector saw was closed by the agent's declarations as it ingested them.
  const undeclaredGaps = db.prepare('SELECT count(*) FROM gaps WHERE declared_at IS NULL').pluck().get() as number;
  const gaps = db.prepare('SELECT count(*) FROM gaps').pluck().get() as number;
  db.close();
  return { rows, lastSeq: Number(drained[1]), collectorData, gaps, undeclaredGaps };
}

describe('delivery across a partition', () => {
  it('delivers all 50,000 events produced while the collector was unreachable', async () => {
    const { rows, lastSeq, collectorData } = await partitioned(512 * 1024 * 1024);
    const events = rows.filter((r) => r.kind === 'event');
    const produced = events.map((r) => JSON.parse(r.body) as { fields: { CommandLine?: string } }).filter((e) => e.fields.CommandLine?.startsWith('true --n '));
    expect(produced.length).toBe(50_000);
    expect(rows.filter((r) => r.kind === 'alert').length).toBe(500);
    expect(rows.length).toBe(lastSeq);
    expect(cli(COLLECTOR_BIN, ['verify', '--data', collectorData]).status).toBe(0);
  }, 180_000);

  it('with a small cap drops the oldest plain events, keeps every alert, and declares each drop exactly', async () => {
    const { rows, lastSeq, collectorData, gaps, undeclaredGaps } = await partitioned(2 * 1024 * 1024);
    expect(gaps).toBeGreaterThan(0);
    expect(undeclaredGaps).toBe(0);
    const stored = new Set(rows.map((r) => r.seq));
    const declarations = rows
      .filter((r) => r.kind === 'event')
      .map((r) => JSON.parse(r.body) as { category: string; fields: { Action?: string; Count?: number; FromSeq?: number; ToSeq?: number } })
      .filter((e) => e.category === 'agent' && e.fields.Action === 'buffer_dropped');
    expect(declarations.length).toBeGreaterThan(0);
    const declared = new Set<number>();
    for (const { fields } of declarations) {
      expect(fields.Count).toBe(fields.ToSeq! - fields.FromSeq! + 1);
      for (let seq = fields.FromSeq!; seq <= fields.ToSeq!; seq++) declared.add(seq);
    }
    // Every seq is stored or declared dropped, never both, and the counts add up.
    for (let seq = 1; seq <= lastSeq; seq++) expect(stored.has(seq) !== declared.has(seq), `seq ${seq}`).toBe(true);
    const droppedCount = declarations.reduce((n, d) => n + d.fields.Count!, 0);
    expect(droppedCount).toBe(lastSeq - rows.length);
    expect(droppedCount).toBeGreaterThan(30_000);
    // Alerts are kept: all 500.
    expect(rows.filter((r) => r.kind === 'alert').length).toBe(500);
    // Oldest first: every stored produced event is newer than every dropped one.
    const keptPlain = rows.filter((r) => r.kind === 'event' && (JSON.parse(r.body) as { category: string }).category === 'process_creation').map((r) => r.seq);
    expect(Math.min(...keptPlain)).toBeGreaterThan(Math.max(...declared));
    const verify = cli(COLLECTOR_BIN, ['verify', '--data', collectorData]);
    expect(verify.status, verify.stdout).toBe(0);
  }, 180_000);
});
