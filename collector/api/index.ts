// The collector's HTTP API (design.md §8): every route of the access table, registered with its role
// check, its CSRF and Origin checks, its input schemas and its access-log line, in that order, before
// the handler runs. Handlers are keyed by route name, so a route without one does not compile.
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { v7 as uuidv7 } from 'uuid';
import { z } from 'zod';
import { newSecret, secretHash } from '../auth.ts';
import { CSV_LINE_BREAK, detailsOf, exportCsvLines, exportLines } from '../export.ts';
import type { WireAlert, WireRecord } from '../protocol/index.ts';
import { listSessions, rangesText, SessionNotFoundError, sessionCast, sessionSummary, type LiveSessions } from '../sessions.ts';
import type { AlertListing, PageCursor, Store, StoredRecord, TriageState } from '../store/types.ts';
import { allows, LEVELS, ROUTES, type RouteName, type RouteSpec } from './access.ts';
import type { CollectorMetrics } from './metrics.ts';
import { openApiDocument } from './openapi.ts';
import { CSRF_HEADER, csrfHolds, fromOurPages, type Logins, type Principal, sameOrigin } from './principal.ts';
import type { RuleText } from './rule-texts.ts';

export interface ApiDeps {
  store: Store;
  logins: Logins;
  sessions: LiveSessions;
  rules: ReadonlyMap<string, RuleText>;
  metrics: CollectorMetrics;
  logger: Logger;
  agentOnline(agentId: string): boolean;
  /** What the agent last reported of itself, if it has since the collector started. */
  agentStatus(agentId: string): AgentStatus | undefined;
  /** Closes a revoked agent's connections now. */
  dropAgent(agentId: string): void;
  /** Closes the WebSocket subscriptions opened with a revoked token now. */
  dropToken(tokenId: string): void;
  /** The ingest counters as JSON, for GET /api/v1/metrics. */
  countersJson(): unknown;
}

export interface AgentStatus {
  version: string;
  rulesVersion: string;
  outboxDepth: number;
}

/** The dashboard's shape of an alert: the agent's record, flattened, with where triage has taken it. */
export interface AlertItem {
  id: string;
  time: string;
  agentId: string;
  stream: string;
  seq: number;
  host: { id: string; name: string } | null;
  level: (typeof LEVELS)[number];
  rule: { id: string; title: string; author: string; tags: string[] };
  sessionId: string | null;
  summary: string;
  eventIds: string[];
  state: TriageState;
  assignee: string | null;
}

interface Context<Q, P, B> {
  principal: Principal | undefined;
  query: Q;
  params: P;
  body: B;
  request: FastifyRequest;
  reply: FastifyReply;
}

type Input<S, K extends 'query' | 'params' | 'body'> = S extends { [key in K]: infer T extends z.ZodType } ? z.output<T> : undefined;
type Handler<N extends RouteName> = (context: Context<Input<(typeof ROUTES)[N], 'query'>, Input<(typeof ROUTES)[N], 'params'>, Input<(typeof ROUTES)[N], 'body'>>) => unknown;
type HttpRouteName = { [N in RouteName]: (typeof ROUTES)[N] extends { websocket: true } ? never : N }[RouteName];

/** A refusal with its HTTP status; the message is shown to the caller. */
export class ApiError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

const SESSION_EVENTS_MAX = 5_000;

export function registerApi(app: FastifyInstance, deps: ApiDeps): void {
  const { store, logins } = deps;
  const document = openApiDocument();

  const handlers: { [N in HttpRouteName]: Handler<N> } = {
    health: () => ({ ok: true }),
    openapi: () => document,

    login: ({ body, reply }) => {
      const begun = logins.begin(body.token);
      if (!begun) throw new ApiError(401, 'that token is not an active admin, analyst or auditor token');
      const { token, csrf } = begun.principal;
      store.logAccess({ at: new Date().toISOString(), tokenId: token.id, by: `${token.role}:${token.name}`, action: 'login', target: '', status: 200 });
      reply.header('set-cookie', logins.cookie(begun.id));
      return { role: token.role, name: token.name, csrf };
    },
    whoami: ({ principal }) => ({ role: principal!.token.role, name: principal!.token.name, csrf: principal!.csrf ?? null }),
    logout: ({ principal, reply }) => {
      if (principal!.loginId !== undefined) logins.end(principal!.loginId);
      reply.header('set-cookie', logins.clearedCookie());
      return reply.code(204).send();
    },

    listAlerts: ({ query }) => {
      const levels = query.level?.split(',').filter((level) => level !== '');
      for (const level of levels ?? []) {
        if (!(LEVELS as readonly string[]).includes(level)) throw new ApiError(400, `level: expected one of ${LEVELS.join(', ')}, got ${JSON.stringify(level)}`);
      }
      const rows = store.alertPage({
        since: query.since, until: query.until, host: query.host, rule: query.rule, sessionId: query.session, state: query.state, levels,
        ...(query.cursor === undefined ? {} : { before: decodeCursor(query.cursor) }),
        limit: query.limit + 1,
      });
      return { alerts: rows.slice(0, query.limit).map(alertItem), next: nextCursor(rows.map((row) => row.record), query.limit) };
    },
    alert: ({ params }) => {
      const record = store.recordById(params.id, 'alert');
      if (!record) throw new ApiError(404, `no alert ${params.id}`);
      const listing = store.triageOf(params.id);
      const item = alertItem({ record, state: listing.state, assignee: listing.assignee });
      const rule = deps.rules.get(item.rule.id);
      return {
        alert: item,
        // Only the alert's own stream: an alert names events of the agent that raised it.
        events: store.recordsByIds(record.stream, item.eventIds).map(recordOf),
        rule: { id: item.rule.id, text: rule?.text ?? null, source: rule?.source ?? null },
        history: listing.history,
      };
    },
    triage: ({ params, body, principal }) => {
      if (!store.recordById(params.id, 'alert')) throw new ApiError(404, `no alert ${params.id}`);
      const current = store.triageOf(params.id);
      const by = `${principal!.token.role}:${principal!.token.name}`;
      let state: TriageState = current.state;
      let assignee = current.assignee;
      // Each step from where the alert is: a closed alert is reopened before anything else is done to it.
      const refuse = (why: string) => new ApiError(409, `${body.action}: ${why} (the alert is ${current.state})`);
      switch (body.action) {
        case 'acknowledge':
          if (current.state !== 'open') throw refuse('only an open alert is acknowledged');
          state = 'acknowledged';
          break;
        case 'assign':
          if (current.state === 'closed') throw refuse('reopen a closed alert before assigning it');
          if (body.assignee === undefined) throw new ApiError(400, 'assignee: assign needs the name of whom to assign it to');
          assignee = body.assignee;
          state = 'acknowledged';
          break;
        case 'close':
          if (current.state === 'closed') throw refuse('it is closed already');
          if (!body.comment?.trim()) throw new ApiError(400, 'comment: closing an alert needs a comment saying why');
          state = 'closed';
          break;
        case 'reopen':
          if (current.state !== 'closed') throw refuse('only a closed alert is reopened');
          state = 'open';
          break;
      }
      store.triage({ alertId: params.id, at: new Date().toISOString(), by, action: body.action, state, assignee, comment: body.comment ?? null });
      return store.triageOf(params.id);
    },

    collectorAlerts: ({ query }) => ({
      alerts: store.collectorAlerts({ since: query.since, until: query.until, newestFirst: true, limit: query.limit })
        .map((alert) => ({ ...alert, details: detailsOf(alert) })),
    }),

    agents: () => ({
      agents: store.listAgents().map((agent) => {
        const status = deps.agentStatus(agent.id);
        return {
          ...agent, online: deps.agentOnline(agent.id),
          version: status?.version ?? null, rulesVersion: status?.rulesVersion ?? null, outboxDepth: status?.outboxDepth ?? null,
        };
      }),
    }),
    revokeAgent: ({ params }) => {
      if (!store.revokeAgent(params.id)) throw new ApiError(404, `no active agent ${params.id}`);
      deps.dropAgent(params.id);
      return { id: params.id, revoked: true };
    },

    sessions: ({ query }) => {
      const live = new Set(deps.sessions.live().map((s) => s.sessionId));
      const since = query.since === undefined ? undefined : Date.parse(query.since);
      const until = query.until === undefined ? undefined : Date.parse(query.until);
      // In the window: started before its end, and not ended before its start (an open one has not ended).
      const sessions = listSessions(store)
        .filter((s) => (since === undefined || s.end === null || Date.parse(s.end) >= since) && (until === undefined || Date.parse(s.start) < until))
        .filter((s) => (query.host === undefined || s.host === query.host) && (query.state === undefined || s.state === query.state));
      return { sessions: sessions.toReversed().slice(0, query.limit).map((s) => ({ ...s, live: live.has(s.id) })), more: sessions.length > query.limit };
    },
    liveSessions: () => ({ sessions: deps.sessions.live() }),
    session: ({ params }) => {
      const session = sessionSummary(store, params.id);
      if (!session) throw new ApiError(404, `no recorded session ${params.id}`);
      const events: unknown[] = [];
      let truncated = false;
      for (const stored of store.records({ sessionId: params.id, kind: 'event' })) {
        if (stored.category === 'session_recording') continue;
        if (events.length === SESSION_EVENTS_MAX) {
          truncated = true;
          break;
        }
        events.push(recordOf(stored));
      }
      const alerts = store.alertPage({ sessionId: params.id, limit: 1_000 }).map(alertItem);
      return { session: { ...session, live: deps.sessions.live().some((s) => s.sessionId === params.id) }, events, eventsTruncated: truncated, alerts };
    },
    recording: ({ params, reply }) => {
      try {
        const { cast, missing, missingCount } = sessionCast(store, params.id);
        // The file alone would look whole: headers say how many chunks the store lacks, and which.
        return reply.type('application/x-asciicast; charset=utf-8').header('x-omwatch-missing-chunks', String(missingCount))
          .header('x-omwatch-missing-ranges', rangesText(missing)).send(cast);
      } catch (error) {
        if (error instanceof SessionNotFoundError) throw new ApiError(404, error.message);
        throw error;
      }
    },
    kill: ({ params, principal, reply }) => {
      const by = `analyst:${principal!.token.name}`;
      if (!deps.sessions.kill(params.id, by)) throw new ApiError(404, `session ${params.id} is not live on a connected agent`);
      deps.logger.warn({ sessionId: params.id, by }, 'session kill sent');
      return reply.code(202).send({ sessionId: params.id, by });
    },

    events: ({ query }) => {
      const rows = store.eventPage({
        since: query.since, until: query.until, host: query.host, category: query.category, sessionId: query.session,
        ...(query.cursor === undefined ? {} : { before: decodeCursor(query.cursor) }),
        limit: query.limit + 1,
      });
      return { events: rows.slice(0, query.limit).map(recordOf), next: nextCursor(rows, query.limit) };
    },
    export: ({ query, reply }) => {
      const filter = { since: query.since, until: query.until, hostId: query.host, sessionId: query.session };
      const csv = query.format === 'csv';
      const lines = csv ? exportCsvLines(store, filter) : exportLines(store, filter);
      const lineBreak = csv ? CSV_LINE_BREAK : '\n';
      const name = `omwatch-export-${new Date().toISOString().replace(/[:.]/g, '-')}.${query.format}`;
      reply.header('content-disposition', `attachment; filename="${name}"`);
      reply.type(csv ? 'text/csv; charset=utf-8' : 'application/x-ndjson; charset=utf-8');
      return reply.send(Readable.from((function* () {
        for (const line of lines) yield `${line}${lineBreak}`;
      })()));
    },
    accessLog: ({ query }) => {
      const beforeId = query.cursor === undefined ? undefined : Number.parseInt(query.cursor, 10);
      if (beforeId !== undefined && !(beforeId > 0)) throw new ApiError(400, 'cursor: not a cursor this API gave');
      const entries = store.accessLog({ ...(beforeId === undefined ? {} : { beforeId }), limit: query.limit + 1 });
      return { entries: entries.slice(0, query.limit), next: entries.length > query.limit ? String(entries[query.limit - 1]!.id) : null };
    },

    tokens: () => ({ tokens: store.listTokens() }),
    createToken: ({ body, reply }) => {
      const secret = newSecret('omwt');
      const token = store.createToken({ id: uuidv7(), role: body.role, name: body.name, secretHash: secretHash(secret) });
      // The secret is shown this once; only its hash is kept.
      return reply.code(201).send({ ...token, secret });
    },
    revokeToken: ({ params }) => {
      if (!store.revokeToken(params.id)) throw new ApiError(404, `no active token ${params.id}`);
      deps.dropToken(params.id);
      return { id: params.id, revoked: true };
    },

    metricsJson: () => deps.countersJson(),
    metrics: async ({ reply }) => reply.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics()),
  };

  app.setErrorHandler((error: Error & { statusCode?: number }, _request, reply) => {
    if (error instanceof ApiError) return reply.code(error.status).send({ error: error.message });
    // Fastify's own refusals (a body that is not JSON, too large) keep their status and say what.
    if (error.statusCode !== undefined && error.statusCode < 500) return reply.code(error.statusCode).send({ error: error.message });
    deps.logger.error({ err: error.message }, 'API request failed');
    return reply.code(500).send({ error: 'internal error; the collector log has the details' });
  });
  app.setNotFoundHandler((_request, reply) => reply.code(404).send({ error: 'no such route' }));

  for (const [name, spec] of Object.entries(ROUTES) as Array<[RouteName, RouteSpec]>) {
    if (spec.websocket) continue;
    const handler = handlers[name as HttpRouteName] as Handler<HttpRouteName>;
    app.route({
      method: spec.method,
      url: spec.path,
      handler: async (request, reply) => {
        const principal = logins.principal(request.headers);
        const log = (status: number) => {
          if (!principal) return;
          store.logAccess({
            at: new Date().toISOString(), tokenId: principal.token.id, by: `${principal.token.role}:${principal.token.name}`,
            action: `${spec.method} ${spec.path}`, target: targetOf(request), status,
          });
        };
        if (principal && !fromOurPages(principal, request.headers)) {
          log(403);
          throw new ApiError(403, 'a login is served only to this collector\'s own pages');
        }
        if (spec.roles.length > 0) {
          if (!principal) throw new ApiError(401, 'log in (POST /api/v1/session) or send Authorization: Bearer <token>');
          if (!allows(spec, principal.token.role)) {
            log(403);
            throw new ApiError(403, `${spec.method} ${spec.path} is for ${spec.roles.join(', ')}; this token is ${principal.token.role}`);
          }
        }
        // A browser's change must come from our own pages: the login's CSRF token in a header, and our Origin.
        if (spec.method !== 'GET' && principal?.via === 'login' && (!csrfHolds(principal, request.headers) || !sameOrigin(request.headers))) {
          log(403);
          throw new ApiError(403, `a change from a login must carry the ${CSRF_HEADER} header from GET /api/v1/session and come from this collector's pages`);
        }
        if (name === 'login' && request.headers.origin !== undefined && !sameOrigin(request.headers)) throw new ApiError(403, 'log in from this collector\'s pages');
        const context = {
          principal, request, reply,
          params: parse(spec.params, request.params, 'path'),
          query: parse(spec.query, request.query, 'query'),
          body: parse(spec.body, request.body ?? {}, 'body'),
        } as Parameters<Handler<HttpRouteName>>[0];
        if (principal) store.touchToken(principal.token.id, new Date().toISOString());
        const result = await handler(context);
        if (spec.audit === 'change' || (spec.audit === 'evidence' && principal?.token.role === 'auditor')) log(reply.statusCode);
        return result;
      },
    });
  }
}

/** Checks input against its schema; the error names the field, where it was, and what was wrong. */
function parse(schema: z.ZodType | undefined, value: unknown, where: string): unknown {
  if (!schema) return undefined;
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  throw new ApiError(400, issue ? `${where} ${issue.path.join('.') || '(whole)'}: ${issue.message}` : `${where}: invalid`);
}

function targetOf(request: FastifyRequest): string {
  const url = new URL(request.url, 'http://collector');
  return `${url.pathname}${url.search}`.slice(0, 1_000);
}

function alertItem(listing: AlertListing): AlertItem {
  const { record } = listing;
  const alert = JSON.parse(record.body) as WireAlert;
  return {
    id: alert.id, time: alert.time, agentId: record.agentId, stream: record.stream, seq: record.seq,
    host: alert.host ?? null, level: alert.rule.level,
    rule: { id: alert.rule.id, title: alert.rule.title, author: alert.rule.author, tags: alert.rule.tags },
    sessionId: alert.sessionId ?? null, summary: alert.summary, eventIds: alert.eventIds, state: listing.state, assignee: listing.assignee,
  };
}

/** A stored record as the API shows it: the record as the agent sent it, and where it is stored. */
function recordOf(stored: StoredRecord): WireRecord & { agentId: string; receivedAt: string } {
  return { ...(JSON.parse(stored.body) as WireRecord), agentId: stored.agentId, receivedAt: stored.receivedAt };
}

const CursorSchema = z.tuple([z.number().int(), z.string().max(64), z.number().int().positive()]);

function decodeCursor(text: string): PageCursor {
  try {
    const [timeMs, stream, seq] = CursorSchema.parse(JSON.parse(Buffer.from(text, 'base64url').toString('utf8')));
    return { timeMs, stream, seq };
  } catch {
    throw new ApiError(400, 'cursor: not a cursor this API gave');
  }
}

function nextCursor(rows: readonly StoredRecord[], limit: number): string | null {
  if (rows.length <= limit) return null;
  const last = rows[limit - 1]!;
  return Buffer.from(JSON.stringify([Date.parse(last.time), last.stream, last.seq])).toString('base64url');
}
