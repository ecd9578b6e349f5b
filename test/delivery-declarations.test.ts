// A gap the collector sees across a long outage is declared by several adjoining buffer_dropped records,
// possibly with a collector restart between them: together they close it, and no chain_broken is raised.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { newSecret, secretHash } from '../collector/auth.ts';
import { GENESIS, INGEST_PATH, sealRecord, STREAM_HEADER, webSocketUrl } from '../collector/protocol/index.ts';
import { startCollector } from '../collector/server.ts';
import { openSqliteStore } from '../collector/store/sqlite/index.ts';

const STREAM = 'stream-declared-1';
const host = { id: 'h1', name: 'hmi-1' };

/** A stream's records, chained; deterministic, so the same specs give the same hashes. */
function chain(specs: Array<{ category: string; fields: Record<string, unknown> }>): Array<Record<string, unknown>> {
  const records: Array<Record<string, unknown>> = [];
  let prev = GENESIS;
  for (const [i, spec] of specs.entries()) {
    const id = `0193a000-0000-7000-8000-${String(i + 1).padStart(12, '0')}`;
    const sealed = sealRecord({ id, time: '2026-11-28T10:00:00.000Z', host, product: 'linux', ...spec }, { stream: STREAM, seq: i + 1, prev });
    records.push(JSON.parse(sealed.json) as Record<string, unknown>);
    prev = sealed.hash;
  }
  return records;
}

async function send(url: string, key: string, records: Array<Record<string, unknown>>): Promise<void> {
  const ws = new WebSocket(webSocketUrl(url, INGEST_PATH), { headers: { authorization: `Bearer ${key}`, [STREAM_HEADER]: STREAM } });
  await new Promise((resolve) => ws.once('message', resolve));
  const last = records.at(-1)!['seq'] as number;
  const acked = new Promise<void>((resolve) => ws.on('message', (data) => {
    if ((JSON.parse(data.toString()) as { seq?: number }).seq === last) resolve();
  }));
  ws.send(JSON.stringify({ type: 'batch', stream: STREAM, events: records }));
  await acked;
  ws.close();
}

describe('gaps declared by adjoining declarations', () => {
  it('closes a gap covered by two declarations, across a collector restart', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'omwatch-declare-')), 'collector.db');
    const store = openSqliteStore(path);
    const key = newSecret('omwk');
    store.createAgent({ id: 'ag-1', name: 'a', hostId: null, keyHash: secretHash(key), enrolledWith: 'test' });
    const processEvent = (n: number) => ({ category: 'process_creation', fields: { ProcessId: n, ParentProcessId: 1, Image: '/usr/bin/true', CommandLine: `true ${n}` } });
    // Seqs 2–3 and 4–5 are dropped by two flushes; their declarations, at 7 and 9, name the hashes around
    // the drops, which the first six records (chained before any declaration) fix.
    const first = chain([1, 2, 3, 4, 5, 6].map(processEvent));
    const hashOf = (seq: number) => first[seq - 1]!['hash'] as string;
    const stream = chain([
      ...[1, 2, 3, 4, 5, 6].map(processEvent),
      { category: 'agent', fields: { Action: 'buffer_dropped', Count: 2, FromSeq: 2, ToSeq: 3, FromPrev: hashOf(1), ToHash: hashOf(3) } },
      processEvent(8),
      { category: 'agent', fields: { Action: 'buffer_dropped', Count: 2, FromSeq: 4, ToSeq: 5, FromPrev: hashOf(3), ToHash: hashOf(5) } },
    ]);
    expect(stream[5]!['hash']).toBe(hashOf(6));

    let collector = await startCollector({ store, host: '127.0.0.1', port: 0 });
    await send(collector.url, key, [stream[0]!, stream[5]!, stream[6]!]);
    expect(store.gaps(STREAM).map((g) => [g.fromSeq, g.toSeq, g.declaredAt !== null])).toEqual([[2, 5, false]]);
    await collector.close();

    collector = await startCollector({ store, host: '127.0.0.1', port: 0 });
    await send(collector.url, key, [stream[7]!, stream[8]!]);
    expect(store.gaps(STREAM).map((g) => [g.fromSeq, g.toSeq, g.declaredAt !== null])).toEqual([[2, 5, true]]);
    expect(collector.ingest.counters.chainBroken).toBe(0);
    await collector.close();
    store.close();
  });
});
