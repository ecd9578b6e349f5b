// The one table of who may do what (design.md §8): every API route and every WebSocket subscription,
// with the roles allowed, what is written to the access log, and the schemas of its input. The server,
// the OpenAPI document and the RBAC test all read this table; nothing grants access outside it.
import { z } from 'zod';
import { LIVE_PATH, SESSION_LIVE_PATH, SessionIdSchema } from '../protocol/index.ts';
import { TRIAGE_ACTIONS } from '../store/types.ts';

/** The roles a person logs in with; `enroll` tokens only enroll agents, agents only ingest. */
export const API_ROLES = ['admin', 'analyst', 'auditor'] as const;
export type ApiRole = (typeof API_ROLES)[number];

/**
 * `evidence`: a read of sessions, recordings, events or exports — logged when an auditor makes it.
 * `change`: anything that changes state (triage, kill, tokens) — always logged.
 */
export type Audit = 'evidence' | 'change';

export interface RouteSpec {
  method: 'GET' | 'POST' | 'DELETE';
  /** Fastify's path syntax (`:id`). */
  path: string;
  /** Empty: open to anyone (health, login, the OpenAPI document). */
  roles: readonly ApiRole[];
  summary: string;
  audit?: Audit;
  params?: z.ZodObject;
  query?: z.ZodObject;
  body?: z.ZodType;
  /** A WebSocket subscription (GET upgrade) rather than an HTTP route. */
  websocket?: true;
  /** What a success returns, for the OpenAPI document; JSON unless said. */
  produces?: string;
}

const MAX_PAGE = 1_000;
const isoTime = z.iso.datetime({ offset: true });
const idParam = z.strictObject({ id: z.string().min(1).max(128) });
// Any id an agent gave a session: lookups are parameterised, and a session listed must be readable.
const StoredSessionIdSchema = z.string().min(1).max(1_024);
const sessionParam = z.strictObject({ id: StoredSessionIdSchema });
const cursor = z.string().max(512).optional().describe('the `next` of the previous page');
const limit = z.coerce.number().int().min(1).max(MAX_PAGE).default(100);
const window = { since: isoTime.optional(), until: isoTime.optional() };
const shortText = z.string().min(1).max(256);

export const LEVELS = ['informational', 'low', 'medium', 'high', 'critical'] as const;

export const ROUTES = {
  health: { method: 'GET', path: '/api/v1/health', roles: [], summary: 'Liveness' },
  openapi: { method: 'GET', path: '/api/v1/openapi.json', roles: [], summary: 'This API, as OpenAPI 3.1' },
  login: {
    method: 'POST', path: '/api/v1/session', roles: [], summary: 'Log in with a token: sets an HttpOnly, SameSite=Strict session cookie',
    body: z.strictObject({ token: z.string().min(16).max(128) }),
  },
  whoami: { method: 'GET', path: '/api/v1/session', roles: ['admin', 'analyst', 'auditor'], summary: 'The logged-in role, name and CSRF token' },
  logout: { method: 'DELETE', path: '/api/v1/session', roles: ['admin', 'analyst', 'auditor'], summary: 'Log out' },

  listAlerts: {
    method: 'GET', path: '/api/v1/alerts', roles: ['analyst'], summary: 'Alerts, newest first, filtered, by cursor',
    query: z.strictObject({
      ...window, host: shortText.optional(), level: z.string().max(128).optional().describe('comma-separated levels'),
      rule: shortText.optional(), session: StoredSessionIdSchema.optional(), state: z.enum(['open', 'acknowledged', 'closed']).optional(), cursor, limit,
    }),
  },
  alert: { method: 'GET', path: '/api/v1/alerts/:id', roles: ['analyst'], summary: 'An alert with its events, its rule text and its triage history', params: idParam },
  triage: {
    method: 'POST', path: '/api/v1/alerts/:id/triage', roles: ['analyst'], summary: 'Acknowledge, assign, close (with a comment) or reopen an alert', audit: 'change',
    params: idParam,
    body: z.strictObject({ action: z.enum(TRIAGE_ACTIONS), assignee: shortText.optional(), comment: z.string().max(4_000).optional() }),
  },

  collectorAlerts: {
    method: 'GET', path: '/api/v1/collector-alerts', roles: ['analyst'], summary: 'The collector\'s own alerts (chain_broken, agent_offline), newest first',
    query: z.strictObject({ ...window, limit }),
  },

  agents: { method: 'GET', path: '/api/v1/agents', roles: ['admin', 'analyst'], summary: 'Agents: online, last seen, version, rules version, outbox depth' },
  revokeAgent: { method: 'POST', path: '/api/v1/agents/:id/revoke', roles: ['admin'], summary: 'Revoke an agent key; its connections close', audit: 'change', params: idParam },

  sessions: {
    method: 'GET', path: '/api/v1/sessions', roles: ['analyst', 'auditor'], summary: 'Recorded sessions', audit: 'evidence',
    query: z.strictObject({ ...window, host: shortText.optional(), state: z.enum(['open', 'ended', 'refused']).optional(), limit: limit.default(500) }),
  },
  liveSessions: { method: 'GET', path: '/api/v1/sessions/live', roles: ['analyst'], summary: 'Recorded sessions live on connected agents now' },
  session: { method: 'GET', path: '/api/v1/sessions/:id', roles: ['analyst', 'auditor'], summary: 'A session with its events and alerts', audit: 'evidence', params: sessionParam },
  recording: {
    method: 'GET', path: '/api/v1/sessions/:id/recording', roles: ['analyst', 'auditor'], summary: 'The session recording (asciicast v2)', audit: 'evidence',
    params: sessionParam, produces: 'application/x-asciicast',
  },
  kill: { method: 'POST', path: '/api/v1/sessions/:id/kill', roles: ['analyst'], summary: 'End a live session now', audit: 'change', params: z.strictObject({ id: SessionIdSchema }) },

  events: {
    method: 'GET', path: '/api/v1/events', roles: ['analyst', 'auditor'], summary: 'Events, newest first, filtered, by cursor', audit: 'evidence',
    query: z.strictObject({ ...window, host: shortText.optional(), category: z.string().regex(/^[a-z_]{1,64}$/).optional(), session: StoredSessionIdSchema.optional(), cursor, limit }),
  },
  export: {
    method: 'GET', path: '/api/v1/export', roles: ['auditor'], summary: 'Export records as JSON lines or CSV (formula-safe)', audit: 'evidence', produces: 'application/x-ndjson',
    query: z.strictObject({ ...window, host: shortText.optional(), session: StoredSessionIdSchema.optional(), format: z.enum(['jsonl', 'csv']).default('jsonl') }),
  },
  accessLog: {
    method: 'GET', path: '/api/v1/access-log', roles: ['admin', 'auditor'], summary: 'Who read which evidence, who changed what; newest first',
    query: z.strictObject({ cursor, limit }),
  },

  tokens: { method: 'GET', path: '/api/v1/tokens', roles: ['admin'], summary: 'Tokens (never their secrets)' },
  createToken: {
    method: 'POST', path: '/api/v1/tokens', roles: ['admin'], summary: 'Create a token; its secret is shown this once', audit: 'change',
    body: z.strictObject({ role: z.enum(['admin', 'analyst', 'auditor', 'enroll']), name: z.string().regex(/^[\p{L}\p{N}._@ -]{1,64}$/u, 'a name of letters, digits, dot, dash, underscore, @ and space, up to 64') }),
  },
  revokeToken: { method: 'DELETE', path: '/api/v1/tokens/:id', roles: ['admin'], summary: 'Revoke a token; its logins end', audit: 'change', params: idParam },

  metricsJson: { method: 'GET', path: '/api/v1/metrics', roles: ['admin'], summary: 'Ingest counters as JSON' },
  metrics: { method: 'GET', path: '/metrics', roles: ['admin'], summary: 'Prometheus metrics', produces: 'text/plain' },

  liveAlerts: { method: 'GET', path: LIVE_PATH, roles: ['analyst'], summary: 'WebSocket: alerts as they are stored', websocket: true },
  liveSession: {
    method: 'GET', path: SESSION_LIVE_PATH, roles: ['analyst'], summary: 'WebSocket: one live session\'s output (?id=SESSION)', websocket: true,
    query: z.strictObject({ id: SessionIdSchema }),
  },
} as const satisfies Record<string, RouteSpec>;

export type RouteName = keyof typeof ROUTES;

/** Whether a role may use a route: the table's answer, the only one. */
export function allows(route: RouteSpec, role: string): boolean {
  return route.roles.length === 0 || (route.roles as readonly string[]).includes(role);
}
