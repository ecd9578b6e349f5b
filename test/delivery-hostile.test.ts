// A live collector under more than 10,000 malformed or hostile frames from an enrolled key: it stays up,
// keeps serving a well-behaved agent, counts each rejection by its reason, and stores nothing from them.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { silentLogger } from '../agent/log/index.ts';
import { openOutbox } from '../agent/outbox/index.ts';
import type { Outbox } from '../agent/outbox/types.ts';
import { Uplink } from '../agent/uplink/index.ts';
import { newSecret, secretHash } from '../collector/auth.ts';
import { chainHash, GENESIS, INGEST_PATH, MAX_FRAME_BYTES, STREAM_HEADER, webSocketUrl } from '../collector/protocol/index.ts';
import { startCollector, type RunningCollector } from '../collector/server.ts';
import { openSqliteStore } from '../collector/store/sqlite/index.ts';
import type { Store } from '../collector/store/types.ts';
import { until } from './helpers/delivery.ts';

let dir: string;
let store: Store;
let collector: RunningCollector;
let adminToken: string;

async function enroll(name: string): Promise<string> {
  const secret = newSecret('omwt');
  store.createToken({ id: uuidv7(), role: 'enroll', name, secretHash: secretHash(secret) });
  const response = await fetch(`${collector.url}/api/v1/enroll`, { method: 'POST', headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' }, body: JSON.stringify({ name }) });
  return ((await response.json()) as { key: string }).key;
}

function event(stream: string, seq: number, prev: string, fields: Record<string, unknown> = { Image: '/usr/bin/true', CommandLine: 'true', ProcessId: 1, ParentProcessId: 1 }) {
  const record: Record<string, unknown> = { id: uuidv7(), time: new Date().toISOString(), host: { id: 'h', name: 'hostile' }, product: 'linux', category: 'process_creation', fields, stream, seq, prev };
  record['hash'] = chainHash(record);
  return record;
}

type Frame = { kind: string; data: string | Buffer; binary?: boolean };

/** Frames of each hostile kind, with the reason the collector must give. */
function hostileFrames(stream: string, goodStream: string): Array<Frame & { reason: string }> {
  const frames: Array<Frame & { reason: string }> = [];
  const add = (reason: string, kind: string, data: string | Buffer, binary = false) => frames.push({ reason, kind, data, binary });
  for (let i = 0; i < 1_500; i++) {
    add('bad_json', 'garbage', ['{', '{"type":"batch"', 'nul\u0000l', ']]]', '{"a":tru}', `${'{"a":'.repeat(50)}`][i % 6]! + String(i));
    add('bad_frame', 'wrong types', JSON.stringify([{ type: 'batch', stream: 123, events: [] }, { type: 'batch', stream, events: 'x' }, { type: 'batch', stream, events: [] }, { type: 'batch', stream, events: Array.from({ length: 1_001 }, () => 0) }, null, 42, 'batch'][i % 7]));
    add('bad_frame', 'unknown type', JSON.stringify({ type: ['hello', 'ack', 'welcome', 'rules', '__proto__'][i % 5], stream, seq: i }));
    add('bad_record', 'huge string', JSON.stringify({ type: 'batch', stream, events: [event(stream, 1, GENESIS, { Image: '/x', CommandLine: 'x'.repeat(40_000 + i), ProcessId: 1, ParentProcessId: 1 })] }));
    add('bad_record', 'bad record', JSON.stringify({ type: 'batch', stream, events: [[{ seq: 0 }, { ...event(stream, 1, GENESIS), seq: -i }, { ...event(stream, 1, GENESIS), category: 'nope' }, { ...event(stream, 1, GENESIS), extra: '<script>' }][i % 4]] }));
    add('bad_sequence', 'seq out of order', JSON.stringify({ type: 'batch', stream, events: [event(stream, 5 + i, GENESIS), event(stream, 2, GENESIS)] }));
    add('foreign_stream', 'replayed into another stream', JSON.stringify({ type: 'batch', stream: goodStream, events: [event(goodStream, 1, GENESIS)] }));
    add('hash_mismatch', 'forged hash', JSON.stringify({ type: 'batch', stream, events: [{ ...event(stream, 1, GENESIS), hash: 'a'.repeat(64) }] }));
  }
  for (let i = 0; i < 300; i++) add('binary_frame', 'binary', Buffer.from([0xff, 0x00, i & 0xff]), true);
  for (let i = 0; i < 300; i++) add('bad_frame', 'deep nesting', `${'['.repeat(5_000 + i)}${']'.repeat(5_000 + i)}`);
  for (let i = 0; i < 20; i++) add('oversize', 'oversize', `"${'x'.repeat(MAX_FRAME_BYTES + 10)}"`);
  return frames;
}

/** Sends one frame on its own connection and resolves with the close code. */
function sendOne(key: string, stream: string, frame: Frame): Promise<number> {
  const ws = new WebSocket(webSocketUrl(collector.url, INGEST_PATH), { headers: { authorization: `Bearer ${key}`, [STREAM_HEADER]: stream } });
  return new Promise((resolve) => {
    ws.once('message', () => ws.send(frame.data, { binary: Boolean(frame.binary) }));
    ws.on('error', () => {});
    ws.once('close', (code) => resolve(code));
  });
}

let good: { outbox: Outbox; uplink: Uplink; timer: NodeJS.Timeout };

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'omwatch-hostile-'));
  store = openSqliteStore(join(dir, 'collector.db'), { synchronous: 'NORMAL' });
  collector = await startCollector({ store, host: '127.0.0.1', port: 0, ingest: { maxRecordsPerSec: 1e9, burstRecords: 1e9 } });
  adminToken = newSecret('omwt');
  store.createToken({ id: 'admin', role: 'admin', name: 'admin', secretHash: secretHash(adminToken) });
  const key = await enroll('well-behaved');
  const { outbox } = openOutbox({ path: join(dir, 'good-outbox.db'), maxBytes: 64 * 1024 * 1024, retainAckedMs: 3_600_000, host: { id: 'good', name: 'good' }, product: 'linux' });
  const uplink = new Uplink({ collectorUrl: collector.url, key, outbox, logger: silentLogger(), initialBackoffMs: 50, maxBackoffMs: 500 });
  uplink.start();
  let n = 0;
  const timer = setInterval(() => {
    for (let i = 0; i < 20; i++) outbox.append({ id: uuidv7(), time: new Date().toISOString(), host: { id: 'good', name: 'good' }, product: 'linux', category: 'process_creation', fields: { Image: '/usr/bin/true', CommandLine: `true ${n++}`, ProcessId: n, ParentProcessId: 1 } });
    outbox.flush();
  }, 10);
  good = { outbox, uplink, timer };
});

afterAll(async () => {
  clearInterval(good.timer);
  await good.uplink.stop();
  good.outbox.close();
  await collector.close();
  store.close();
});

describe('the collector under hostile frames', () => {
  it('refuses each, counts it by reason, stores nothing, and keeps serving a well-behaved agent', async () => {
    const hostileKey = await enroll('hostile');
    const frames = hostileFrames('hostile-stream', good.outbox.stream);
    expect(frames.length).toBeGreaterThanOrEqual(10_000);
    const expected: Record<string, number> = {};
    for (const f of frames) expected[f.reason] = (expected[f.reason] ?? 0) + 1;

    // Eight workers, each on its own stream, one frame per connection (a bad frame closes it).
    let next = 0;
    const workers = Array.from({ length: 8 }, async (_, w) => {
      const stream = `hostile-stream-${w}`;
      for (let i = next++; i < frames.length; i = next++) {
        const frame = frames[i]!;
        const data = typeof frame.data === 'string' ? frame.data.replaceAll('hostile-stream', stream) : frame.data;
        const code = await sendOne(hostileKey, stream, { ...frame, data });
        expect(code, `${frame.kind} frame ${i}`).not.toBe(1000);
      }
    });
    await Promise.all(workers);

    const metrics = await (await fetch(`${collector.url}/api/v1/metrics`, { headers: { authorization: `Bearer ${adminToken}` } })).json() as { ingest: { rejected: Record<string, number> } };
    expect(metrics.ingest.rejected).toEqual(expected);
    for (let w = 0; w < 8; w++) expect([...store.records({ stream: `hostile-stream-${w}` })]).toHaveLength(0);

    // The well-behaved agent was served all along: everything it wrote is acked. It stops writing first:
    // while it writes, a batch can be stored and its ack still on the way (a count off by one batch).
    clearInterval(good.timer);
    const target = good.outbox.flush();
    await until('the good agent acked to its last seq', () => good.uplink.stats.ackedSeq >= target, 30_000);
    expect(target).toBeGreaterThan(100);
    expect([...store.records({ stream: good.outbox.stream })]).toHaveLength(target);
    expect((await fetch(`${collector.url}/api/v1/health`)).status).toBe(200);
  }, 240_000);
});
