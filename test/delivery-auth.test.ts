// Nobody but an enrolled agent may send, and only into its own stream: no key, a wrong key, a revoked
// key, an enrollment or analyst token, and one agent writing into another's stream are all refused.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { newSecret, secretHash } from '../collector/auth.ts';
import { CloseCode, INGEST_PATH, STREAM_HEADER, webSocketUrl } from '../collector/protocol/index.ts';
import { startCollector, type RunningCollector } from '../collector/server.ts';
import { openSqliteStore } from '../collector/store/sqlite/index.ts';
import type { Store } from '../collector/store/types.ts';

let store: Store;
let collector: RunningCollector;
const secrets: Record<string, string> = {};

let tokenCount = 0;
function token(role: 'enroll' | 'admin' | 'analyst' | 'auditor'): { id: string; secret: string } {
  const secret = newSecret('omwt');
  const id = `${role}-${tokenCount++}`;
  store.createToken({ id, role, name: role, secretHash: secretHash(secret) });
  return { id, secret };
}

async function enrollAgent(name: string): Promise<{ agentId: string; key: string }> {
  const response = await fetch(`${collector.url}/api/v1/enroll`, {
    method: 'POST', headers: { authorization: `Bearer ${secrets['enroll']}`, 'content-type': 'application/json' }, body: JSON.stringify({ name }),
  });
  expect(response.status).toBe(201);
  return (await response.json()) as { agentId: string; key: string };
}

/** The HTTP status of a refused upgrade, or 101 and the welcome frame when accepted. */
function connect(secret: string | undefined, stream: string): Promise<{ status: number; ws?: WebSocket; welcome?: unknown }> {
  const headers: Record<string, string> = { [STREAM_HEADER]: stream };
  if (secret !== undefined) headers['authorization'] = `Bearer ${secret}`;
  const ws = new WebSocket(webSocketUrl(collector.url, INGEST_PATH), { headers });
  return new Promise((resolve, reject) => {
    ws.on('unexpected-response', (_request, response) => resolve({ status: response.statusCode ?? 0 }));
    ws.once('message', (data) => resolve({ status: 101, ws, welcome: JSON.parse(data.toString()) }));
    ws.on('error', (error) => {
      if (!/Unexpected server response/.test(error.message)) reject(error);
    });
  });
}

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'omwatch-auth-'));
  store = openSqliteStore(join(dir, 'collector.db'));
  collector = await startCollector({ store, host: '127.0.0.1', port: 0 });
  for (const role of ['enroll', 'analyst', 'admin'] as const) secrets[role] = token(role).secret;
});

afterAll(async () => {
  await collector.close();
  store.close();
});

describe('ingest authentication', () => {
  it('accepts an enrolled agent and welcomes it at the start of a new stream', async () => {
    const { key } = await enrollAgent('good');
    const result = await connect(key, 'stream-good-1');
    expect(result.status).toBe(101);
    expect(result.welcome).toEqual({ type: 'welcome', stream: 'stream-good-1', ackedSeq: 0 });
    result.ws!.close();
  });

  it('refuses no key, a wrong key, and tokens of other roles', async () => {
    expect((await connect(undefined, 'stream-x-0001')).status).toBe(401);
    expect((await connect(newSecret('omwk'), 'stream-x-0001')).status).toBe(401);
    expect((await connect(secrets['enroll'], 'stream-x-0001')).status).toBe(401);
    expect((await connect(secrets['analyst'], 'stream-x-0001')).status).toBe(401);
    expect((await connect(secrets['admin'], 'stream-x-0001')).status).toBe(401);
  });

  it('closes a connected agent whose key is revoked, at its next frame after the recheck interval', async () => {
    let now = Date.now();
    const dir = mkdtempSync(join(tmpdir(), 'omwatch-auth-clock-'));
    const clocked = openSqliteStore(join(dir, 'collector.db'));
    const server = await startCollector({ store: clocked, host: '127.0.0.1', port: 0, now: () => now });
    try {
      const key = newSecret('omwk');
      clocked.createAgent({ id: 'ag-r', name: 'r', hostId: null, keyHash: secretHash(key), enrolledWith: 'test' });
      const ws = new WebSocket(webSocketUrl(server.url, INGEST_PATH), { headers: { authorization: `Bearer ${key}`, [STREAM_HEADER]: 'stream-revoke-1' } });
      await new Promise((resolve) => ws.once('message', resolve));
      clocked.revokeAgent('ag-r');
      now += 6_000;
      const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
      ws.send(JSON.stringify({ type: 'batch', stream: 'stream-revoke-1', events: [{}] }));
      expect(await closed).toBe(CloseCode.REVOKED);
    } finally {
      await server.close();
      clocked.close();
    }
  });

  it('refuses a revoked key', async () => {
    const { agentId, key } = await enrollAgent('revoked');
    expect((await connect(key, 'stream-revoked-1')).status).toBe(101);
    expect(store.revokeAgent(agentId)).toBe(true);
    expect((await connect(key, 'stream-revoked-1')).status).toBe(401);
  });

  it("refuses one agent writing into another agent's stream, at connect and inside a batch", async () => {
    const a = await enrollAgent('a');
    const b = await enrollAgent('b');
    const first = await connect(a.key, 'stream-of-a-1');
    expect(first.status).toBe(101);
    first.ws!.close();
    expect((await connect(b.key, 'stream-of-a-1')).status).toBe(403);
    // On its own connection, b names a's stream in a batch: closed, nothing stored.
    const own = await connect(b.key, 'stream-of-b-1');
    const closed = new Promise<number>((resolve) => own.ws!.once('close', (code) => resolve(code)));
    own.ws!.send(JSON.stringify({ type: 'batch', stream: 'stream-of-a-1', events: [{}] }));
    expect(await closed).toBe(CloseCode.FOREIGN_STREAM);
    expect([...store.records({ stream: 'stream-of-a-1' })]).toEqual([]);
  });

  it('refuses an agent more streams than it may have', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'omwatch-auth-streams-'));
    const capped = openSqliteStore(join(dir, 'collector.db'));
    const server = await startCollector({ store: capped, host: '127.0.0.1', port: 0, ingest: { maxStreamsPerAgent: 3 } });
    const original = collector;
    try {
      const key = newSecret('omwk');
      capped.createAgent({ id: 'ag-s', name: 's', hostId: null, keyHash: secretHash(key), enrolledWith: 'test' });
      collector = server;
      for (const n of [1, 2, 3]) {
        const accepted = await connect(key, `stream-many-${n}`);
        expect(accepted.status).toBe(101);
        accepted.ws!.close();
      }
      expect((await connect(key, 'stream-many-4')).status).toBe(403);
      // Its existing streams stay open to it.
      const again = await connect(key, 'stream-many-2');
      expect(again.status).toBe(101);
      again.ws!.close();
    } finally {
      collector = original;
      await server.close();
      capped.close();
    }
  });

  it('enrolls only with an active enrollment token', async () => {
    for (const secret of [undefined, secrets['analyst'], secrets['admin'], newSecret('omwt')]) {
      const response = await fetch(`${collector.url}/api/v1/enroll`, {
        method: 'POST', headers: { 'content-type': 'application/json', ...(secret ? { authorization: `Bearer ${secret}` } : {}) }, body: '{}',
      });
      expect(response.status).toBe(401);
    }
    const revoked = token('enroll');
    expect(store.revokeToken(revoked.id)).toBe(true);
    const response = await fetch(`${collector.url}/api/v1/enroll`, { method: 'POST', headers: { authorization: `Bearer ${revoked.secret}`, 'content-type': 'application/json' }, body: '{}' });
    expect(response.status).toBe(401);
  });

  it('stores no secret in the clear', () => {
    const tokens = store.listTokens();
    expect(JSON.stringify(tokens)).not.toContain(secrets['enroll']);
  });
});
