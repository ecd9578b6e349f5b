// The collector's network face: HTTP(S) for enrollment and the API, WebSocket upgrades for agent
// ingest and the live alert feed. Who may do what is decided here, before any handler runs.
import { existsSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { Duplex } from 'node:stream';
import Fastify, { type FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import { v7 as uuidv7 } from 'uuid';
import { WebSocketServer, type WebSocket } from 'ws';
import { z } from 'zod';
import { allows, ROUTES, type RouteSpec } from './api/access.ts';
import { registerApi, type AgentStatus } from './api/index.ts';
import { collectorMetrics } from './api/metrics.ts';
import { Logins, sameOrigin, type LoginOptions } from './api/principal.ts';
import { readRuleTexts, SHIPPED_PACKS } from './api/rule-texts.ts';
import { agentFor, bearer, newSecret, secretHash, tokenFor } from './auth.ts';
import { CollectorConfigError } from './errors.ts';
import { Ingest, type IngestOptions } from './ingest/index.ts';
import { LiveFeed } from './live.ts';
import {
  ENROLL_PATH, INGEST_PATH, isLoopbackHost, MAX_FRAME_BYTES, STREAM_HEADER, StreamIdSchema,
} from './protocol/index.ts';
import { LiveSessions } from './sessions.ts';
import type { Agent, Commit, Store } from './store/types.ts';

export interface CollectorOptions {
  store: Store;
  host: string;
  port: number;
  /** PEM. Required unless `host` is a loopback address. */
  tls?: { cert: string; key: string };
  ingest?: Partial<IngestOptions>;
  /** The clock ingest reads (tests move it); Date.now by default. */
  now?: () => number;
  /** Where group commits go when not to the store's own connection (a writer thread). */
  commitMany?: (commits: Commit[]) => Promise<void>;
  /** Agents are pinged this often; one that has not answered the previous ping is dropped. */
  pingIntervalMs?: number;
  /** An agent disconnected this long raises agent_offline. */
  offlineAfterMs?: number;
  logger?: Logger;
  /** Folders of rule files whose text alert details show; the shipped packs by default. */
  ruleFolders?: string[];
  /** The built dashboard (`npm run build:web`); served at `/` when it exists. */
  webRoot?: string;
  logins?: Partial<LoginOptions>;
}

/** Where `npm run build:web` puts the dashboard. */
export const DEFAULT_WEB_ROOT = fileURLToPath(new URL('./web/dist/', import.meta.url));

/**
 * The dashboard's pages may load only the collector's own scripts and styles, talk only to it, and never
 * be framed: an injected string that slipped past rendering as text still could not run or phone home.
 * asciinema-player compiles its terminal emulator from WebAssembly, hence 'wasm-unsafe-eval' (not 'unsafe-eval').
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'", "script-src 'self' 'wasm-unsafe-eval'", "style-src 'self' 'unsafe-inline'", "img-src 'self' data:",
  "font-src 'self' data:", "connect-src 'self'", "object-src 'none'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'self'",
].join('; ');

export interface RunningCollector {
  /** The base URL agents and tools are given (`https://…` or `http://` on loopback). */
  url: string;
  port: number;
  ingest: Ingest;
  live: LiveFeed;
  sessions: LiveSessions;
  close(): Promise<void>;
}

const EnrollBodySchema = z.strictObject({
  name: z.string().regex(/^[\p{L}\p{N}._ -]{1,128}$/u, 'a name of letters, digits, dot, dash, underscore and space, up to 128').optional(),
  hostId: z.string().regex(/^[A-Za-z0-9_-]{1,128}$/).optional(),
});

export { CollectorConfigError };

export async function startCollector(options: CollectorOptions): Promise<RunningCollector> {
  const { store } = options;
  const logger = options.logger ?? pino({ level: 'silent' });
  if (!options.tls && !isLoopbackHost(options.host)) {
    throw new CollectorConfigError(`listening on ${options.host} needs --tls-cert and --tls-key: plain HTTP is only allowed on loopback`);
  }
  const live = new LiveFeed();
  const sessions = new LiveSessions();
  /** Upgrades refused before any frame, by reason. */
  const refusals = { unauthorized: 0, forbidden: 0, badStream: 0, foreignStream: 0, tooManyStreams: 0 };
  const online = new Map<string, Set<WebSocket>>();
  const statuses = new Map<string, AgentStatus>();
  const metrics = collectorMetrics({
    agentsConnected: () => online.size,
    recordsStored: () => ingest.counters.records,
    duplicates: () => ingest.counters.duplicates,
    rejects: () => ({ ...ingest.counters.rejected, ...Object.fromEntries(Object.entries(refusals).map(([reason, n]) => [`upgrade_${reason}`, n])) }),
    liveSubscribers: () => live.counters.subscribers,
    liveSessions: () => sessions.live().length,
  });
  const commitMany: (commits: Commit[]) => Promise<void> | void = options.commitMany ?? ((commits) => store.commitMany(commits));
  // Timed without changing its kind: a synchronous commit (the store's own) stays synchronous, so ingest
  // acks in the same turn as before; a writer thread's promise is timed when it settles.
  const timedCommitMany = (commits: Commit[]): Promise<void> | void => {
    const started = performance.now();
    const observe = (ok: boolean) => metrics.observeCommit((performance.now() - started) / 1000, ok);
    let result: Promise<void> | void;
    try {
      result = commitMany(commits);
    } catch (error) {
      observe(false);
      throw error;
    }
    if (!(result instanceof Promise)) return observe(true);
    return result.then(() => observe(true), (error: unknown) => {
      observe(false);
      throw error;
    });
  };
  const ingest = new Ingest(store, (agentId, alert) => live.publish(agentId, alert), options.ingest, {
    onSessionFrame: (agentId, ws, frame) => (frame.type === 'pty' ? sessions.relay(agentId, frame) : sessions.announce(agentId, ws, frame)),
    onStatus: (agentId, frame) => statuses.set(agentId, frame),
    onError: (error) => logger.error({ err: error.message }, 'the store refused a group commit; its agents will resend'),
    ...(options.now ? { now: options.now } : {}),
    commitMany: timedCommitMany,
  });
  const app: FastifyInstance = Fastify({ logger: false, bodyLimit: 64 * 1024, ...(options.tls ? { https: options.tls } : {}) }) as unknown as FastifyInstance;

  app.post(ENROLL_PATH, async (request, reply) => {
    const token = tokenFor(store, bearer(request.headers.authorization), ['enroll']);
    if (!token) return reply.code(401).send({ error: 'an active enrollment token is required (Authorization: Bearer …)' });
    const body = EnrollBodySchema.safeParse(request.body ?? {});
    if (!body.success) return reply.code(400).send({ error: body.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ') });
    const key = newSecret('omwk');
    const agent = store.createAgent({ id: uuidv7(), name: body.data.name ?? 'agent', hostId: body.data.hostId ?? null, keyHash: secretHash(key), enrolledWith: token.id });
    store.touchToken(token.id, new Date().toISOString());
    logger.info({ agentId: agent.id, name: agent.name, token: token.id }, 'agent enrolled');
    // The key is shown this once; only its hash is kept.
    return reply.code(201).send({ agentId: agent.id, key });
  });

  const logins = new Logins(store, { ...options.logins, secure: options.tls !== undefined });
  const { rules, skipped } = readRuleTexts(options.ruleFolders ?? [SHIPPED_PACKS]);
  for (const reason of skipped) logger.warn({ reason }, 'a rule folder or file could not be read; alerts of its rules show no rule text');
  app.addHook('onSend', async (_request, reply, payload) => {
    reply.header('content-security-policy', CONTENT_SECURITY_POLICY);
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'no-referrer');
    reply.header('x-frame-options', 'DENY');
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store');
    return payload;
  });
  registerApi(app, {
    store, logins, sessions, rules, metrics, logger,
    agentOnline: (id) => online.has(id),
    agentStatus: (id) => statuses.get(id),
    dropAgent: (id) => {
      for (const ws of online.get(id) ?? []) ws.close(4401, 'the agent key was revoked');
    },
    dropToken: (id) => closeSubscriptions(({ tokenId }) => tokenId === id),
    countersJson: () => ({ ingest: ingest.counters, refusals, live: live.counters, sessions: sessions.counters, agentsOnline: online.size, store: store.counts() }),
  });
  const webRoot = options.webRoot ?? DEFAULT_WEB_ROOT;
  if (existsSync(webRoot)) {
    // wildcard: files are looked up per request, so a rebuild while the collector runs is served as built.
    await app.register(fastifyStatic, { root: webRoot, prefix: '/', index: ['index.html'], wildcard: true, cacheControl: false });
  } else {
    logger.warn({ webRoot }, 'the dashboard is not built (npm run build:web); the API is served without it');
  }

  // Agent connections: ping/pong finds dead peers; an agent gone for offlineAfterMs raises agent_offline.
  const pingIntervalMs = options.pingIntervalMs ?? 15_000;
  const offlineAfterMs = options.offlineAfterMs ?? 90_000;
  let closing = false;
  /** Analysts' and dashboards' WebSockets, by the token (and the browser login) they were opened with. */
  const subscriptions = new Map<WebSocket, { tokenId: string; loginId: string | undefined }>();
  function closeSubscriptions(ended: (opener: { tokenId: string; loginId: string | undefined }) => boolean, why = 'the token was revoked'): void {
    for (const [ws, opener] of subscriptions) if (ended(opener)) ws.close(4401, why);
  }
  // A login that ends (logout, expiry, eviction) takes its live views with it.
  logins.onEnd((loginId) => closeSubscriptions((opener) => opener.loginId === loginId, 'the login ended'));
  const offlineTimers = new Map<string, NodeJS.Timeout>();
  const alive = new WeakMap<WebSocket, boolean>();
  const agentSockets = new Set<WebSocket>();
  const pinger = setInterval(() => {
    for (const ws of agentSockets) {
      if (alive.get(ws) === false) {
        ws.terminate();
        continue;
      }
      alive.set(ws, false);
      ws.ping();
    }
    ingest.sweepGaps();
    // A token revoked elsewhere (the CLI, another node) ends its subscriptions at the next sweep; an open
    // live view keeps its login in use (the login's maximum age still ends it).
    if (subscriptions.size > 0) {
      const active = new Set(store.listTokens().filter((token) => token.revokedAt === null).map((token) => token.id));
      closeSubscriptions(({ tokenId }) => !active.has(tokenId));
      for (const { loginId } of subscriptions.values()) if (loginId !== undefined) logins.touch(loginId);
    }
  }, pingIntervalMs);
  pinger.unref();

  const connected = (agent: Agent, ws: WebSocket) => {
    clearTimeout(offlineTimers.get(agent.id));
    offlineTimers.delete(agent.id);
    let sockets = online.get(agent.id);
    if (!sockets) online.set(agent.id, (sockets = new Set()));
    sockets.add(ws);
    agentSockets.add(ws);
    alive.set(ws, true);
    ws.on('pong', () => alive.set(ws, true));
    store.agentSeen(agent.id, new Date().toISOString());
    ws.on('close', () => {
      agentSockets.delete(ws);
      sockets.delete(ws);
      // Once the collector is closing, the store may be closed too: nothing more is recorded.
      if (closing) return;
      store.agentSeen(agent.id, new Date().toISOString());
      if (sockets.size > 0) return;
      online.delete(agent.id);
      const timer = setTimeout(() => {
        offlineTimers.delete(agent.id);
        if (online.has(agent.id)) return;
        const alert = {
          id: uuidv7(), time: new Date().toISOString(), type: 'agent_offline' as const, agentId: agent.id, stream: null,
          summary: `agent ${agent.name} (${agent.id}) offline for ${Math.round(offlineAfterMs / 1000)} s`, details: JSON.stringify({ lastSeenAt: store.agent(agent.id)?.lastSeenAt }),
        };
        store.addAlert(alert);
        live.publish(agent.id, { collectorAlert: alert });
      }, offlineAfterMs);
      timer.unref();
      offlineTimers.set(agent.id, timer);
    });
  };

  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES });
  const refuse = (socket: Duplex, status: number, message: string) => {
    socket.end(`HTTP/1.1 ${status} ${status === 401 ? 'Unauthorized' : status === 403 ? 'Forbidden' : status === 404 ? 'Not Found' : 'Bad Request'}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n${message}\n`);
  };
  app.server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    // Node drops its own error listener when it hands the socket over: a peer resetting the connection
    // while it is refused or upgraded must not become an uncaught error.
    socket.on('error', () => socket.destroy());
    const path = new URL(request.url ?? '/', 'http://collector').pathname;
    const secret = bearer(request.headers.authorization);
    if (path === INGEST_PATH) {
      const agent = agentFor(store, secret);
      if (!agent) {
        refusals.unauthorized++;
        return refuse(socket, 401, 'an enrolled agent key is required (Authorization: Bearer …)');
      }
      const stream = StreamIdSchema.safeParse(request.headers[STREAM_HEADER]);
      if (!stream.success) {
        refusals.badStream++;
        return refuse(socket, 400, `header ${STREAM_HEADER} must name the outbox stream`);
      }
      const runtime = ingest.open(agent, stream.data);
      if ('refused' in runtime) {
        if (runtime.refused === 'foreign_stream') {
          refusals.foreignStream++;
          return refuse(socket, 403, 'that stream belongs to another agent');
        }
        refusals.tooManyStreams++;
        return refuse(socket, 403, 'this agent has as many streams as it may');
      }
      wss.handleUpgrade(request, socket, head, (ws) => {
        connected(agent, ws);
        ingest.accept(ws, agent, runtime);
      });
      return;
    }
    // The dashboard's and the CLI's subscriptions: the access table says who may open which.
    const route = (Object.values(ROUTES) as RouteSpec[]).find((spec) => spec.websocket && spec.path === path);
    if (route) {
      const principal = logins.principal(request.headers);
      // A browser opens a WebSocket with its cookie from any page it visits: only our own pages may.
      if (!principal || (principal.via === 'login' && !sameOrigin(request.headers))) {
        refusals.unauthorized++;
        return refuse(socket, 401, 'log in from this collector\'s pages, or send Authorization: Bearer <token>');
      }
      if (!allows(route, principal.token.role)) {
        refusals.forbidden++;
        store.logAccess({
          at: new Date().toISOString(), tokenId: principal.token.id, by: `${principal.token.role}:${principal.token.name}`,
          action: `WS ${route.path}`, target: (request.url ?? path).slice(0, 1_000), status: 403,
        });
        return refuse(socket, 403, `this subscription is for ${route.roles.join(', ')}; this token is ${principal.token.role}`);
      }
      const query = route.query?.safeParse(Object.fromEntries(new URL(request.url ?? '/', 'http://collector').searchParams));
      if (query && !query.success) return refuse(socket, 400, `query: ${query.error.issues[0]?.message ?? 'invalid'}`);
      store.touchToken(principal.token.id, new Date().toISOString());
      wss.handleUpgrade(request, socket, head, (ws) => {
        subscriptions.set(ws, { tokenId: principal.token.id, loginId: principal.loginId });
        ws.once('close', () => subscriptions.delete(ws));
        if (route === ROUTES.liveAlerts) live.subscribe(ws);
        else sessions.watch((query!.data as { id: string }).id, ws);
      });
      return;
    }
    refuse(socket, 404, 'no WebSocket here');
  });

  await app.listen({ host: options.host, port: options.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const hostPart = options.host.includes(':') ? `[${options.host}]` : options.host;
  const url = `${options.tls ? 'https' : 'http'}://${hostPart}:${port}`;
  logger.info({ url }, 'collector listening');

  return {
    url, port, ingest, live, sessions,
    async close() {
      closing = true;
      clearInterval(pinger);
      for (const timer of offlineTimers.values()) clearTimeout(timer);
      live.close();
      sessions.close();
      const closed = [...wss.clients].map((ws) => new Promise<void>((resolve) => {
        ws.once('close', () => resolve());
        ws.close(1001, 'collector stopping');
        setTimeout(() => ws.terminate(), 1_000).unref();
      }));
      await Promise.all(closed);
      await app.close();
    },
  };
}
