// Ingest's status frames over a real WebSocket on port 0: a good one is handed to onStatus; a malformed
// one closes its connection with BAD_FRAME, is counted, and the agent's next connection is served.
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { startIngest, type IngestServer } from '../../test/helpers/ingest.ts';
import { CloseCode, INGEST_PATH, STREAM_HEADER, webSocketUrl, type StatusFrame } from '../protocol/index.ts';

const STREAM = 'status-unit-stream';
const GOOD: StatusFrame = { type: 'status', version: '0.1.0', rulesVersion: '0123456789abcdef', outboxDepth: 3, outboxBytes: 1200, sensors: [{ name: 'processes', state: 'degraded' }] };

let dir: string;
let server: IngestServer;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'omwatch-ingest-'));
  server = await startIngest(dir);
});

afterEach(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

/** An agent connection past its welcome. */
async function connect(): Promise<WebSocket> {
  const ws = new WebSocket(webSocketUrl(server.url, INGEST_PATH), { headers: { authorization: `Bearer ${server.key}`, [STREAM_HEADER]: STREAM } });
  const [welcome] = await once(ws, 'message');
  expect(JSON.parse(String(welcome))).toMatchObject({ type: 'welcome', stream: STREAM });
  return ws;
}

describe('Ingest: status frames', () => {
  it('hands a status frame to onStatus with the agent it came from', async () => {
    const ws = await connect();
    ws.send(JSON.stringify(GOOD));
    await server.waitStatus();
    expect(server.statuses).toEqual([{ agentId: server.agentId, frame: GOOD }]);
    ws.close();
  });

  it.each([
    ['a negative outbox depth', { ...GOOD, outboxDepth: -1 }, /^not a status frame: outboxDepth: /],
    ['a field it does not know', { ...GOOD, uptimeMs: 5 }, /^not a status frame: \(frame\): Unrecognized key/],
    ['no rules version', { type: 'status', version: '0.1.0', outboxDepth: 0, outboxBytes: 0 }, /^not a status frame: rulesVersion: /],
    ['a version past 64 characters', { ...GOOD, version: 'v'.repeat(65) }, /^not a status frame: version: /],
    ['a sensor state it does not know', { ...GOOD, sensors: [{ name: 'processes', state: 'sleepy' }] }, /^not a status frame: sensors\.0\.state: /],
  ])('closes a connection that sends a status frame with %s (BAD_FRAME), counts it, and serves the next one', async (_what, frame, reason) => {
    const bad = await connect();
    bad.send(JSON.stringify(frame));
    const [code, text] = await once(bad, 'close');
    expect(code).toBe(CloseCode.BAD_FRAME);
    expect(String(text)).toMatch(reason);
    expect(server.ingest.counters.rejected).toEqual({ bad_frame: 1 });
    expect(server.statuses).toEqual([]);
    // The collector goes on: the agent's next connection is served and its status handed on.
    const next = await connect();
    next.send(JSON.stringify(GOOD));
    expect(await server.waitStatus()).toEqual(GOOD);
    next.close();
  });
});
