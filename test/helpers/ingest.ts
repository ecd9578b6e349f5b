// The collector's ingest alone: an Ingest on a real WebSocket server on port 0, a real SQLite store and
// one enrolled agent, for tests of agent ⇄ collector frames without the rest of the collector.
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { agentFor, bearer, newSecret, secretHash } from '../../collector/auth.ts';
import { Ingest } from '../../collector/ingest/index.ts';
import { INGEST_PATH, MAX_FRAME_BYTES, STREAM_HEADER, StreamIdSchema, type StatusFrame } from '../../collector/protocol/index.ts';
import { openSqliteStore } from '../../collector/store/sqlite/index.ts';
import type { Store } from '../../collector/store/types.ts';

export interface IngestServer {
  /** The collector's base URL (`http://127.0.0.1:port`), as an enrollment names it. */
  url: string;
  agentId: string;
  /** The enrolled agent's key. */
  key: string;
  ingest: Ingest;
  store: Store;
  /** Every status frame the ingest handed on, in order, with the agent it came from. */
  statuses: Array<{ agentId: string; frame: StatusFrame }>;
  /** Resolves with the first status (received already, or next) that `match` accepts. */
  waitStatus(match?: (frame: StatusFrame, index: number) => boolean): Promise<StatusFrame>;
  /** The server ends of agent connections, oldest first. */
  connections: WebSocket[];
  /** Resolves with the next agent connection accepted. */
  nextConnection(): Promise<WebSocket>;
  close(): Promise<void>;
}

export async function startIngest(dataDir: string): Promise<IngestServer> {
  const store = openSqliteStore(join(dataDir, 'collector.db'));
  const key = newSecret('omwk');
  const agent = store.createAgent({ id: `agent-${Date.now()}`, name: 'status-test', hostId: null, keyHash: secretHash(key), enrolledWith: 'test' });
  const events = new EventEmitter();
  const statuses: IngestServer['statuses'] = [];
  const connections: WebSocket[] = [];
  const ingest = new Ingest(store, () => {}, {}, {
    onStatus: (agentId, frame) => {
      statuses.push({ agentId, frame });
      events.emit('status');
    },
  });
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES });
  const server = createServer((_request, response) => response.writeHead(404).end());
  // As collector/server.ts admits an agent: its key, then the stream it names.
  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const known = agentFor(store, bearer(request.headers.authorization));
    const stream = StreamIdSchema.safeParse(request.headers[STREAM_HEADER]);
    const runtime = known && stream.success && new URL(request.url ?? '/', 'http://x').pathname === INGEST_PATH ? ingest.open(known, stream.data) : undefined;
    if (!known || !runtime || 'refused' in runtime) {
      socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => {
      connections.push(ws);
      ingest.accept(ws, known, runtime);
      events.emit('connection', ws);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`, agentId: agent.id, key, ingest, store, statuses, connections,
    waitStatus(match = () => true) {
      return new Promise((resolve) => {
        const check = () => {
          const found = statuses.findIndex(({ frame }, index) => match(frame, index));
          if (found === -1) return;
          events.off('status', check);
          resolve(statuses[found]!.frame);
        };
        events.on('status', check);
        check();
      });
    },
    nextConnection() {
      return new Promise((resolve) => events.once('connection', resolve));
    },
    async close() {
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      store.close();
    },
  };
}
