// Regressions from a review of ingest: inputs that once crashed or hung the collector, each now refused
// or ignored while the collector keeps serving.
import { mkdtempSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { newSecret, secretHash } from '../collector/auth.ts';
import { GENESIS, INGEST_PATH, LIVE_PATH, MAX_FRAME_BYTES, sealRecord, STREAM_HEADER, webSocketUrl } from '../collector/protocol/index.ts';
import { startCollector, type RunningCollector } from '../collector/server.ts';
import { openSqliteStore } from '../collector/store/sqlite/index.ts';
import type { Store } from '../collector/store/types.ts';
import { until } from './helpers/delivery.ts';

let store: Store;
let collector: RunningCollector;
let key: string;
let now = Date.now();
const host = { id: 'h1', name: 'hmi-1' };

function chain(stream: string, specs: Array<{ category: string; fields: Record<string, unknown> }>): Array<Record<string, unknown>> {
  let prev = GENESIS;
  return specs.map((spec, i) => {
    const id = `0193a000-0000-7000-8000-${String(i + 1).padStart(12, '0')}`;
    const sealed = sealRecord({ id, time: '2026-11-28T10:00:00.000Z', host, product: 'linux', ...spec }, { stream, seq: i + 1, prev });
    prev = sealed.hash;
    return JSON.parse(sealed.json) as Record<string, unknown>;
  });
}
const event = (n: number) => ({ category: 'process_creation', fields: { ProcessId: n, ParentProcessId: 1, Image: '/usr/bin/true', CommandLine: `true ${n}` } });

/** Sends one batch on a new connection; resolves with the first ack's seq or the close code. */
function send(stream: string, records: Array<Record<string, unknown>>): Promise<{ ack?: number; close?: number }> {
  const ws = new WebSocket(webSocketUrl(collector.url, INGEST_PATH), { headers: { authorization: `Bearer ${key}`, [STREAM_HEADER]: stream } });
  return new Promise((resolve) => {
    ws.once('message', () => {
      ws.on('message', (data) => {
        resolve({ ack: (JSON.parse(data.toString()) as { seq: number }).seq });
        ws.close();
      });
      ws.send(JSON.stringify({ type: 'batch', stream, events: records }));
    });
    ws.on('close', (code) => resolve({ close: code }));
  });
}

async function healthy(): Promise<boolean> {
  return (await fetch(`${collector.url}/api/v1/health`)).status === 200;
}

beforeAll(async () => {
  store = openSqliteStore(join(mkdtempSync(join(tmpdir(), 'omwatch-robust-')), 'collector.db'));
  collector = await startCollector({ store, host: '127.0.0.1', port: 0, now: () => now, ingest: { gapDeclarationMs: 1_000 } });
  key = newSecret('omwk');
  store.createAgent({ id: 'ag-1', name: 'a', hostId: null, keyHash: secretHash(key), enrolledWith: 'test' });
});

afterAll(async () => {
  await collector.close();
  store.close();
});

describe('ingest robustness', () => {
  it('survives a peer that resets the connection while its upgrade is refused', async () => {
    for (let i = 0; i < 50; i++) {
      const socket = tcpConnect(collector.port, '127.0.0.1');
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.write(`GET ${INGEST_PATH} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
      socket.resetAndDestroy();
    }
    expect(await healthy()).toBe(true);
  });

  it('does not loop on a reversed buffer_dropped range', async () => {
    const records = chain('stream-reversed-1', [
      event(1), event(2), event(3), event(4), event(5),
      { category: 'agent', fields: { Action: 'buffer_dropped', Count: 2, FromSeq: 2, ToSeq: 3 } },
      { category: 'agent', fields: { Action: 'buffer_dropped', Count: 0, FromSeq: 4, ToSeq: 3 } },
    ]);
    // Seqs 2–5 missing: a gap the two declarations would "cover" only by going round in circles.
    expect(await send('stream-reversed-1', [records[0]!, records[5]!, records[6]!])).toEqual({ ack: 7 });
    expect(await healthy()).toBe(true);
  });

  it('keeps no gap from a refused frame, so the gap sweep has nothing to fail on', async () => {
    const records = chain('stream-refused-1', [event(1), event(2), event(3), event(4), event(5), event(6)]);
    const forged = { ...records[5]!, hash: 'f'.repeat(64) };
    expect((await send('stream-refused-1', [records[0]!, records[4]!, forged])).close).toBe(4400);
    now += 5_000;
    expect(() => collector.ingest.sweepGaps()).not.toThrow();
    expect(store.gaps('stream-refused-1')).toEqual([]);
    expect(await healthy()).toBe(true);
  });

  it('survives a live subscriber sending an oversize frame', async () => {
    const analyst = newSecret('omwt');
    store.createToken({ id: 'analyst-1', role: 'analyst', name: 'a', secretHash: secretHash(analyst) });
    const ws = new WebSocket(webSocketUrl(collector.url, LIVE_PATH), { headers: { authorization: `Bearer ${analyst}` } });
    await new Promise((resolve) => ws.once('open', resolve));
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    ws.on('error', () => {});
    ws.send('x'.repeat(MAX_FRAME_BYTES + 1));
    expect(await closed).toBe(1009);
    expect(await healthy()).toBe(true);
  });
});

describe('agents online and offline', () => {
  it('drops an agent that stops answering pings and raises agent_offline once it stays away', async () => {
    const offlineStore = openSqliteStore(join(mkdtempSync(join(tmpdir(), 'omwatch-offline-')), 'collector.db'));
    const server = await startCollector({ store: offlineStore, host: '127.0.0.1', port: 0, pingIntervalMs: 100, offlineAfterMs: 300 });
    try {
      const agentKey = newSecret('omwk');
      offlineStore.createAgent({ id: 'ag-quiet', name: 'quiet hmi', hostId: null, keyHash: secretHash(agentKey), enrolledWith: 'test' });
      // A peer that is there but dead: it never answers a ping.
      const ws = new WebSocket(webSocketUrl(server.url, INGEST_PATH), { headers: { authorization: `Bearer ${agentKey}`, [STREAM_HEADER]: 'stream-quiet-1' }, autoPong: false });
      await new Promise((resolve) => ws.once('message', resolve));
      const dropped = await new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
      expect(dropped).toBe(1006);
      await until('an agent_offline alert', () => offlineStore.collectorAlerts().find((a) => a.type === 'agent_offline'));
      const [alert] = offlineStore.collectorAlerts().filter((a) => a.type === 'agent_offline');
      expect(alert).toMatchObject({ agentId: 'ag-quiet', summary: expect.stringContaining('quiet hmi') });
    } finally {
      await server.close();
      offlineStore.close();
    }
  });
});
