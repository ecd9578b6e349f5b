// The collector's HTTP API against a real collector on port 0 and a real SQLite store: every route and
// every subscription of the access table walked with every role (bearer and browser login), the
// login's CSRF and Origin checks, the auditor's access log, triage, pages, and Prometheus metrics
// after a real ingest.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { API_ROLES, ROUTES, allows, type RouteName, type RouteSpec } from '../collector/api/access.ts';
import { newSecret, secretHash } from '../collector/auth.ts';
import { INGEST_PATH, SHELL_TOOL, STREAM_HEADER, webSocketUrl } from '../collector/protocol/index.ts';
import { startCollector, type RunningCollector } from '../collector/server.ts';
import { TestChain } from '../collector/store/contract.ts';
import { until } from './helpers/delivery.ts';
import { openSqliteStore } from '../collector/store/sqlite/index.ts';
import type { Role, Store } from '../collector/store/types.ts';

const SESSION = 'sess-api-0001';

let dir: string;
let store: Store;
let collector: RunningCollector;
const tokens = {} as Record<Role, string>;
let alertId: string;
let shippedAlertId: string;
const SHIPPED_RULE = '6f1c1d0e-6b5e-4d2a-9b2f-0a1e5c7d9b01';
let agentKey: string;
let agentId: string;

function url(path: string): string {
  return `${collector.url}${path}`;
}

async function call(path: string, init: RequestInit & { token?: string } = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (init.token) headers.set('authorization', `Bearer ${init.token}`);
  if (init.body !== undefined) headers.set('content-type', 'application/json');
  return fetch(url(path), { ...init, headers });
}

/** A browser's login: the cookie and CSRF token it holds after POST /api/v1/session. */
async function login(role: Role): Promise<{ cookie: string; csrf: string }> {
  const response = await call('/api/v1/session', { method: 'POST', body: JSON.stringify({ token: tokens[role] }), headers: { origin: collector.url } });
  expect(response.status).toBe(200);
  const setCookie = response.headers.get('set-cookie')!;
  expect(setCookie).toMatch(/HttpOnly/);
  expect(setCookie).toMatch(/SameSite=Strict/);
  const { csrf } = (await response.json()) as { csrf: string };
  return { cookie: setCookie.split(';')[0]!, csrf };
}

/** A request each route's schema accepts, naming things that do not exist where a change would destroy. */
const SAMPLES: Record<RouteName, { path?: string; body?: unknown }> = {
  health: {}, openapi: {}, login: { body: { token: 'omwt_not-a-real-token-at-all' } }, whoami: {}, logout: {},
  listAlerts: { path: '/api/v1/alerts?level=high&limit=5' },
  alert: { path: '/api/v1/alerts/ALERT' },
  triage: { path: '/api/v1/alerts/ALERT/triage', body: { action: 'acknowledge' } },
  collectorAlerts: { path: '/api/v1/collector-alerts?limit=10' }, agents: {}, revokeAgent: { path: '/api/v1/agents/no-such-agent/revoke' },
  sessions: {}, liveSessions: {}, session: { path: `/api/v1/sessions/${SESSION}` }, recording: { path: `/api/v1/sessions/${SESSION}/recording` },
  kill: { path: '/api/v1/sessions/sess-not-live-01/kill' },
  events: { path: '/api/v1/events?limit=5' }, export: { path: '/api/v1/export?format=jsonl' }, accessLog: {},
  tokens: {}, createToken: { body: { role: 'auditor', name: 'made-by-walk' } }, revokeToken: { path: '/api/v1/tokens/no-such-token' },
  metricsJson: {}, metrics: {}, liveAlerts: {}, liveSession: { path: `/api/v1/sessions/live?id=${SESSION}` },
};

/** A stream of the test's agent, claimed in the store, for records committed straight to it. */
function enrollTestStream(stream: string): void {
  store.claimStream(stream, agentId);
}

function samplePath(name: RouteName, spec: RouteSpec): string {
  return (SAMPLES[name].path ?? spec.path).replace('ALERT', alertId);
}

/** The status of a WebSocket upgrade: 101 when it opens, else the refusal's status. */
function upgrade(path: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(webSocketUrl(collector.url, path), { headers });
    ws.once('open', () => {
      ws.close();
      resolve(101);
    });
    ws.once('unexpected-response', (_request, response) => {
      resolve(response.statusCode ?? 0);
      ws.terminate();
    });
    ws.once('error', (error) => {
      if (!/Unexpected server response/.test(error.message)) reject(error);
    });
  });
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'omwatch-api-'));
  store = openSqliteStore(join(dir, 'collector.db'));
  for (const role of ['admin', 'analyst', 'auditor', 'enroll'] as const) {
    tokens[role] = newSecret('omwt');
    store.createToken({ id: uuidv7(), role, name: `${role}-1`, secretHash: secretHash(tokens[role]) });
  }
  agentKey = newSecret('omwk');
  agentId = uuidv7();
  store.createAgent({ id: agentId, name: 'hmi-07', hostId: 'host-0001', keyHash: secretHash(agentKey), enrolledWith: 'test' });
  store.claimStream('stream-api-0001', agentId);
  const chain = new TestChain('stream-api-0001');
  const start = new Date(Date.parse('2026-03-01T10:00:00Z')).toISOString();
  chain.append({
    id: uuidv7(), time: start, host: chain.host, product: 'linux', category: 'remote_session',
    fields: { SessionId: SESSION, Action: 'start', Protocol: 'pty', Tool: SHELL_TOOL, User: 'vendor1', Ticket: 'CHG-7', Width: 80, Height: 24, StartTime: start },
  });
  chain.append({ id: uuidv7(), time: start, host: chain.host, product: 'linux', category: 'session_recording', fields: { SessionId: SESSION, Chunk: 0, Data: '[0.1,"o","hello from the session\\r\\n"]\n' } });
  chain.event({ sessionId: SESSION, commandLine: 'iptables -F' });
  chain.event({ commandLine: '=HYPERLINK("http://evil.example","click")' });
  for (let i = 0; i < 5; i++) chain.alert({ summary: `alert ${i}`, sessionId: SESSION });
  alertId = chain.records.at(-1)!.id;
  // An alert of a rule the product ships, older than the rest.
  chain.append({
    id: uuidv7(), time: '2026-02-01T00:00:00.000Z', eventIds: [chain.records[2]!.id], host: chain.host, summary: 'late-night session',
    rule: { id: SHIPPED_RULE, title: 'Remote Session Outside a Maintenance Window', level: 'medium', tags: [], author: 'omwatch' },
  });
  shippedAlertId = chain.records.at(-1)!.id;
  store.commit(chain.commit());
  collector = await startCollector({ store, host: '127.0.0.1', port: 0 });
}, 30_000);

afterAll(async () => {
  await collector?.close();
  store?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the API against the access table', () => {
  /** What the table says of a status: allowed (anything but 401/403), or the refusal it must be. */
  function verdict(status: number, allowed: boolean, refusal: 401 | 403): string | undefined {
    if (allowed) return status === 401 || status === 403 ? `refused with ${status}, the table allows it` : undefined;
    return status === refusal ? undefined : `got ${status}, the table refuses it with ${refusal}`;
  }

  it('lets each role do exactly what the table says, on every route and subscription, by bearer token', async () => {
    const wrong: string[] = [];
    let walked = 0;
    for (const [name, spec] of Object.entries(ROUTES) as Array<[RouteName, RouteSpec]>) {
      for (const who of ['anonymous', 'enroll', ...API_ROLES] as const) {
        const token = who === 'anonymous' ? undefined : tokens[who];
        const path = samplePath(name, spec);
        const status = spec.websocket
          ? await upgrade(path, token ? { authorization: `Bearer ${token}` } : {})
          : (await call(path, { method: spec.method, ...(token ? { token } : {}), ...(SAMPLES[name].body ? { body: JSON.stringify(SAMPLES[name].body) } : {}) })).status;
        const person = who !== 'anonymous' && who !== 'enroll';
        // The login sample's token is not one: every caller is refused with 401 alike.
        const allowed = name !== 'login' && (spec.roles.length === 0 || (person && allows(spec, who)));
        const problem = verdict(status, allowed, person && name !== 'login' ? 403 : 401);
        // An allowed call of a sample names nothing that exists where it would change something: 404 at worst.
        const sampleProblem = allowed && !problem && status >= 400 && status !== 404 ? `got ${status} for a sample its schema accepts` : undefined;
        if (problem ?? sampleProblem) wrong.push(`${who} ${spec.method} ${path}: ${problem ?? sampleProblem}`);
        walked++;
      }
    }
    expect(wrong).toEqual([]);
    expect(walked).toBe(Object.keys(ROUTES).length * 5);
  }, 60_000);

  it('lets each role do exactly what the table says through a browser login, with its CSRF token and our Origin', async () => {
    const wrong: string[] = [];
    for (const role of API_ROLES) {
      const { cookie, csrf } = await login(role);
      for (const [name, spec] of Object.entries(ROUTES) as Array<[RouteName, RouteSpec]>) {
        if (name === 'logout' || name === 'login') continue;
        const path = samplePath(name, spec);
        const headers = { cookie, origin: collector.url, 'x-omwatch-csrf': csrf };
        const status = spec.websocket
          ? await upgrade(path, headers)
          : (await call(path, { method: spec.method, headers, ...(SAMPLES[name].body ? { body: JSON.stringify(SAMPLES[name].body) } : {}) })).status;
        const problem = verdict(status, allows(spec, role), 403);
        if (problem) wrong.push(`${role} ${spec.method} ${path}: ${problem}`);
      }
    }
    expect(wrong).toEqual([]);
  }, 60_000);

  it('refuses a login\'s change without the CSRF token or from another origin, and a cross-origin WebSocket', async () => {
    const { cookie, csrf } = await login('analyst');
    const stepsBefore = store.triageOf(alertId).history.length;
    const triage = (headers: Record<string, string>) =>
      call(`/api/v1/alerts/${alertId}/triage`, { method: 'POST', headers: { cookie, ...headers }, body: JSON.stringify({ action: 'acknowledge' }) });
    expect((await triage({ origin: collector.url })).status).toBe(403);
    expect((await triage({ origin: collector.url, 'x-omwatch-csrf': 'x'.repeat(csrf.length) })).status).toBe(403);
    expect((await triage({ origin: 'https://evil.example', 'x-omwatch-csrf': csrf })).status).toBe(403);
    expect((await triage({ 'x-omwatch-csrf': csrf })).status).toBe(403);
    expect(store.triageOf(alertId).history).toHaveLength(stepsBefore);
    expect(await upgrade('/api/v1/live', { cookie, origin: 'https://evil.example' })).toBe(401);
    expect(await upgrade('/api/v1/live', { cookie })).toBe(401);
    expect(await upgrade('/api/v1/live', { cookie, origin: collector.url })).toBe(101);
  });

  it('ends a login on logout, and a login and its live feed when its token is revoked', async () => {
    const { cookie, csrf } = await login('analyst');
    const headers = { cookie, origin: collector.url, 'x-omwatch-csrf': csrf };
    expect((await call('/api/v1/session', { headers })).status).toBe(200);
    expect((await call('/api/v1/session', { method: 'DELETE', headers })).status).toBe(204);
    expect((await call('/api/v1/session', { headers })).status).toBe(401);

    const made = (await (await call('/api/v1/tokens', { method: 'POST', token: tokens.admin, body: JSON.stringify({ role: 'analyst', name: 'temp' }) })).json()) as { id: string; secret: string };
    const second = await call('/api/v1/session', { method: 'POST', body: JSON.stringify({ token: made.secret }) });
    const secondCookie = second.headers.get('set-cookie')!.split(';')[0]!;
    expect((await call('/api/v1/alerts', { headers: { cookie: secondCookie } })).status).toBe(200);
    const feed = new WebSocket(webSocketUrl(collector.url, '/api/v1/live'), { headers: { cookie: secondCookie, origin: collector.url } });
    await new Promise((resolve) => feed.once('open', resolve));
    const feedClosed = new Promise<number>((resolve) => feed.once('close', (code) => resolve(code)));
    expect((await call(`/api/v1/tokens/${made.id}`, { method: 'DELETE', token: tokens.admin })).status).toBe(200);
    expect(await feedClosed).toBe(4401);
    expect((await call('/api/v1/alerts', { headers: { cookie: secondCookie } })).status).toBe(401);
    expect((await call('/api/v1/session', { method: 'POST', body: JSON.stringify({ token: made.secret }) })).status).toBe(401);
  });

  it('ends a login\'s live views when it logs out; caps logins per token without touching another token\'s', async () => {
    const { cookie, csrf } = await login('analyst');
    const headers = { cookie, origin: collector.url, 'x-omwatch-csrf': csrf };
    const feed = new WebSocket(webSocketUrl(collector.url, '/api/v1/live'), { headers: { cookie, origin: collector.url } });
    await new Promise((resolve) => feed.once('open', resolve));
    const feedClosed = new Promise<number>((resolve) => feed.once('close', (code) => resolve(code)));
    expect((await call('/api/v1/session', { method: 'DELETE', headers })).status).toBe(204);
    expect(await feedClosed).toBe(4401);

    const admin = await login('admin');
    const first = await login('auditor');
    for (let i = 0; i < 32; i++) await login('auditor');
    expect((await call('/api/v1/session', { headers: { cookie: first.cookie } })).status).toBe(401);
    expect((await call('/api/v1/session', { headers: { cookie: admin.cookie } })).status).toBe(200);
  });

  it('serves a login only to our own pages: a cross-site request carrying the cookie is refused and logged', async () => {
    const { cookie } = await login('auditor');
    expect((await call('/api/v1/export', { headers: { cookie, 'sec-fetch-site': 'cross-site' } })).status).toBe(403);
    expect((await call('/api/v1/export', { headers: { cookie, 'sec-fetch-site': 'same-site' } })).status).toBe(403);
    expect((await call('/api/v1/sessions', { headers: { cookie, 'sec-fetch-site': 'same-origin' } })).status).toBe(200);
    expect(await upgrade('/api/v1/live', { cookie, origin: collector.url, 'sec-fetch-site': 'same-site' })).toBe(401);
    expect(await upgrade('/api/v1/live', { cookie, origin: collector.url })).toBe(403);
    const log = store.accessLog({ limit: 3 });
    expect(log.map((e) => [e.action, e.status])).toEqual([['WS /api/v1/live', 403], ['GET /api/v1/sessions', 200], ['GET /api/v1/export', 403]]);
  });

  it('names the field a bad input got wrong', async () => {
    const body = (await (await call('/api/v1/alerts?limit=5000', { token: tokens.analyst })).json()) as { error: string };
    expect(body.error).toMatch(/query limit/);
    expect(((await (await call('/api/v1/alerts?level=severe', { token: tokens.analyst })).json()) as { error: string }).error).toMatch(/level: expected one of/);
    expect(((await (await call('/api/v1/alerts?cursor=garbage', { token: tokens.analyst })).json()) as { error: string }).error).toMatch(/cursor/);
    expect(((await (await call('/api/v1/alerts?color=red', { token: tokens.analyst })).json()) as { error: string }).error).toMatch(/color/);
    const notJson = await fetch(url(`/api/v1/alerts/${alertId}/triage`), { method: 'POST', headers: { authorization: `Bearer ${tokens.analyst}`, 'content-type': 'application/json' }, body: '{"action":' });
    expect(notJson.status).toBe(400);
  });
});

describe('alerts, triage, sessions and evidence', () => {
  it('pages alerts newest first and filters them', async () => {
    const first = (await (await call('/api/v1/alerts?limit=2&rule=om-001', { token: tokens.analyst })).json()) as { alerts: Array<{ summary: string; level: string; rule: { author: string } }>; next: string };
    expect(first.alerts.map((a) => a.summary)).toEqual(['alert 4', 'alert 3']);
    expect(first.alerts[0]!.rule.author).toBe('omwatch');
    const rest = (await (await call(`/api/v1/alerts?limit=10&rule=om-001&cursor=${first.next}`, { token: tokens.analyst })).json()) as { alerts: Array<{ summary: string }>; next: string | null };
    expect(rest.alerts.map((a) => a.summary)).toEqual(['alert 2', 'alert 1', 'alert 0']);
    expect(rest.next).toBeNull();
    const filtered = (await (await call(`/api/v1/alerts?session=${SESSION}&level=high,critical&host=host-0001`, { token: tokens.analyst })).json()) as { alerts: unknown[] };
    expect(filtered.alerts).toHaveLength(5);
    expect(((await (await call('/api/v1/alerts?level=low', { token: tokens.analyst })).json()) as { alerts: unknown[] }).alerts).toHaveLength(0);
    expect(((await (await call('/api/v1/alerts?level=medium', { token: tokens.analyst })).json()) as { alerts: Array<{ id: string }> }).alerts.map((a) => a.id)).toEqual([shippedAlertId]);
  });

  it('lists the collector\'s own alerts newest first, details as JSON', async () => {
    store.addAlert({ id: uuidv7(), time: '2026-03-01T12:00:00.000Z', type: 'agent_offline', agentId, stream: null, summary: 'agent hmi-07 offline for 90 s', details: '{"lastSeenAt":"2026-03-01T11:58:30.000Z"}' });
    const { alerts } = (await (await call('/api/v1/collector-alerts', { token: tokens.analyst })).json()) as { alerts: Array<{ type: string; details: unknown }> };
    expect(alerts[0]).toMatchObject({ type: 'agent_offline', details: { lastSeenAt: '2026-03-01T11:58:30.000Z' } });
  });

  it('keeps the triage history: acknowledge, assign, close with a comment (required), reopen', async () => {
    const id = ((await (await call('/api/v1/alerts?limit=1', { token: tokens.analyst })).json()) as { alerts: Array<{ id: string }> }).alerts[0]!.id;
    const stepsBefore = store.triageOf(id).history.length;
    const step = async (body: unknown) => call(`/api/v1/alerts/${id}/triage`, { method: 'POST', token: tokens.analyst, body: JSON.stringify(body) });
    expect((await step({ action: 'assign', assignee: 'bob' })).status).toBe(200);
    expect((await step({ action: 'close' })).status).toBe(400);
    expect((await step({ action: 'close', comment: 'vendor work under CHG-7' })).status).toBe(200);
    const detail = (await (await call(`/api/v1/alerts/${id}`, { token: tokens.analyst })).json()) as {
      alert: { state: string; assignee: string }; events: unknown[]; rule: { text: string | null }; history: Array<{ by: string; action: string; comment: string | null }>;
    };
    expect(detail.alert).toMatchObject({ state: 'closed', assignee: 'bob' });
    expect(detail.history.slice(stepsBefore).map((h) => [h.by, h.action, h.comment])).toEqual([['analyst:analyst-1', 'assign', null], ['analyst:analyst-1', 'close', 'vendor work under CHG-7']]);
    expect(((await (await call('/api/v1/alerts?state=closed', { token: tokens.analyst })).json()) as { alerts: Array<{ id: string }> }).alerts.map((a) => a.id)).toEqual([id]);
    // Steps from where the alert is: nothing but reopen on a closed alert.
    expect((await step({ action: 'acknowledge' })).status).toBe(409);
    expect((await step({ action: 'close', comment: 'again' })).status).toBe(409);
    expect((await step({ action: 'assign', assignee: 'carol' })).status).toBe(409);
    expect((await step({ action: 'reopen' })).status).toBe(200);
    expect((await step({ action: 'reopen' })).status).toBe(409);
    expect(store.triageOf(id).history.slice(stepsBefore).map((h) => h.action)).toEqual(['assign', 'close', 'reopen']);
  });

  it('shows an alert with its events and the text of its rule, author kept; a rule the collector lacks has none', async () => {
    const detail = (await (await call(`/api/v1/alerts/${shippedAlertId}`, { token: tokens.analyst })).json()) as {
      rule: { id: string; text: string; source: string }; events: Array<{ fields: { CommandLine: string } }>;
    };
    expect(detail.rule.source).toBe('om-sessions.yml');
    expect(detail.rule.text).toMatch(/^title: Remote Session Outside a Maintenance Window$/m);
    expect(detail.rule.text).toMatch(/^author: omwatch$/m);
    expect(detail.events.map((e) => e.fields.CommandLine)).toEqual(['iptables -F']);
    const other = (await (await call(`/api/v1/alerts/${alertId}`, { token: tokens.analyst })).json()) as { rule: unknown };
    expect(other.rule).toEqual({ id: 'om-001', text: null, source: null });
  });

  it('lists sessions, shows one with its events and alerts, and serves its recording', async () => {
    const list = (await (await call('/api/v1/sessions', { token: tokens.auditor })).json()) as { sessions: Array<{ id: string; user: string; ticket: string; live: boolean }> };
    expect(list.sessions).toEqual([expect.objectContaining({ id: SESSION, agentId, user: 'vendor1', ticket: 'CHG-7', live: false, state: 'open' })]);
    // Started before the window and not ended: still open in it.
    const later = (await (await call('/api/v1/sessions?since=2026-03-01T11:00:00Z&state=open', { token: tokens.auditor })).json()) as { sessions: Array<{ id: string }> };
    expect(later.sessions.map((s) => s.id)).toEqual([SESSION]);
    const detail = (await (await call(`/api/v1/sessions/${SESSION}`, { token: tokens.auditor })).json()) as { events: Array<{ category: string; fields: { CommandLine?: string } }>; alerts: unknown[] };
    expect(detail.events.map((e) => e.category)).toEqual(['remote_session', 'process_creation']);
    expect(detail.events[1]!.fields.CommandLine).toBe('iptables -F');
    expect(detail.alerts).toHaveLength(5);
    const recording = await call(`/api/v1/sessions/${SESSION}/recording`, { token: tokens.auditor });
    expect(recording.headers.get('content-type')).toMatch(/application\/x-asciicast/);
    const [header, event] = (await recording.text()).trimEnd().split('\n').map((line) => JSON.parse(line) as unknown);
    expect(header).toMatchObject({ version: 2, session_id: SESSION, user: 'vendor1' });
    expect(event).toEqual([0.1, 'o', 'hello from the session\r\n']);
    expect((await call('/api/v1/sessions/sess-unknown-01/recording', { token: tokens.auditor })).status).toBe(404);
  });

  it('serves a recording whose agent numbered a chunk near 2^31 at once, naming the missing chunks as ranges (a number-sized loop froze it)', async () => {
    enrollTestStream('stream-api-0003');
    const chain = new TestChain('stream-api-0003');
    const start = '2026-03-02T10:00:00.000Z';
    chain.append({
      id: uuidv7(), time: start, host: chain.host, product: 'linux', category: 'remote_session',
      fields: { SessionId: 'sess-forged-01', Action: 'start', Protocol: 'pty', Tool: SHELL_TOOL, User: 'vendor1', StartTime: start },
    });
    for (const chunk of [0, 2, 2 ** 31 - 1]) {
      chain.append({ id: uuidv7(), time: start, host: chain.host, product: 'linux', category: 'session_recording', fields: { SessionId: 'sess-forged-01', Chunk: chunk, Data: `[0.${chunk % 10},"o","c${chunk}"]\n` } });
    }
    store.commit(chain.commit());
    const response = await call('/api/v1/sessions/sess-forged-01/recording', { token: tokens.auditor });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-omwatch-missing-chunks')).toBe(String(2 ** 31 - 1 - 2));
    expect(response.headers.get('x-omwatch-missing-ranges')).toBe(`1, 3-${2 ** 31 - 2}`);
    expect((await response.text()).split('\n').slice(1, -1)).toEqual(['[0.0,"o","c0"]', '[0.2,"o","c2"]', '[0.7,"o","c2147483647"]']);
  });

  it('writes every auditor read of a session, recording or export to the access log, which admins and auditors read', async () => {
    const before = (await (await call('/api/v1/access-log?limit=1000', { token: tokens.admin })).json()) as { entries: Array<{ id: number }> };
    const since = before.entries[0]?.id ?? 0;
    await call(`/api/v1/sessions/${SESSION}`, { token: tokens.auditor });
    await call(`/api/v1/sessions/${SESSION}/recording`, { token: tokens.auditor });
    const exported = await call('/api/v1/export?format=jsonl', { token: tokens.auditor });
    expect((await exported.text()).trimEnd().split('\n')).toHaveLength(store.counts().records);
    await call(`/api/v1/sessions/${SESSION}`, { token: tokens.analyst });
    const log = (await (await call('/api/v1/access-log', { token: tokens.auditor })).json()) as { entries: Array<{ id: number; by: string; action: string; target: string; status: number }> };
    const fresh = log.entries.filter((e) => e.id > since).toReversed();
    expect(fresh.map((e) => [e.by, e.action, e.target, e.status])).toEqual([
      ['auditor:auditor-1', 'GET /api/v1/sessions/:id', `/api/v1/sessions/${SESSION}`, 200],
      ['auditor:auditor-1', 'GET /api/v1/sessions/:id/recording', `/api/v1/sessions/${SESSION}/recording`, 200],
      ['auditor:auditor-1', 'GET /api/v1/export', '/api/v1/export?format=jsonl', 200],
    ]);
    expect((await call('/api/v1/access-log', { token: tokens.analyst })).status).toBe(403);
  });

  it('is documented route by route in docs/api.md with the roles the table gives', () => {
    const doc = readFileSync(new URL('../docs/api.md', import.meta.url), 'utf8');
    const missing = (Object.values(ROUTES) as RouteSpec[])
      .map((spec) => `| ${spec.websocket ? 'WS' : spec.method} \`${spec.path}\` | ${spec.roles.length > 0 ? spec.roles.join(', ') : 'anyone'} |`)
      .filter((row) => !doc.includes(row));
    expect(missing).toEqual([]);
  });

  it('exports CSV for spreadsheets with a formula typed as a command line kept as text', async () => {
    const response = await call('/api/v1/export?format=csv', { token: tokens.auditor });
    expect(response.headers.get('content-type')).toMatch(/text\/csv/);
    expect(response.headers.get('content-disposition')).toMatch(/attachment; filename="omwatch-export-.*\.csv"/);
    const text = await response.text();
    expect(text).toContain(`'=HYPERLINK(""http://evil.example"",""click"")`);
    expect(text).not.toMatch(/(^|,)=HYPERLINK/m);
  });

  it('publishes an OpenAPI document of every route with its roles', async () => {
    const document = (await (await call('/api/v1/openapi.json')).json()) as { openapi: string; paths: Record<string, Record<string, { 'x-roles': string[] }>> };
    expect(document.openapi).toBe('3.1.0');
    expect(document.paths['/api/v1/sessions/{id}/kill']!['post']!['x-roles']).toEqual(['analyst']);
    const operations = Object.values(document.paths).flatMap((methods) => Object.values(methods));
    expect(operations).toHaveLength(Object.keys(ROUTES).length);
  });
});

describe('metrics', () => {
  it('counts a real ingest, a refused frame, connected agents and commit latency for Prometheus; shows the agent\'s status', async () => {
    const chain = new TestChain('stream-api-0002');
    for (let i = 0; i < 3; i++) chain.event();
    const ws = new WebSocket(webSocketUrl(collector.url, INGEST_PATH), { headers: { authorization: `Bearer ${agentKey}`, [STREAM_HEADER]: chain.stream } });
    const acked = new Promise<void>((resolve) => ws.on('message', (data) => {
      const frame = JSON.parse(String(data)) as { type: string; seq?: number };
      if (frame.type === 'ack' && frame.seq === 3) resolve();
    }));
    await new Promise((resolve) => ws.once('open', resolve));
    ws.send(JSON.stringify({ type: 'batch', stream: chain.stream, events: chain.records }));
    await acked;
    const text = await (await call('/metrics', { token: tokens.admin })).text();
    expect(text).toMatch(/^omwatch_agents_connected 1$/m);
    expect(Number(/^omwatch_records_stored_total (\d+)$/m.exec(text)?.[1])).toBeGreaterThanOrEqual(3);
    expect(Number(/^omwatch_store_commit_seconds_count\{outcome="ok"\} (\d+)$/m.exec(text)?.[1])).toBeGreaterThanOrEqual(1);
    // What the agent says of itself shows on the agents page.
    ws.send(JSON.stringify({ type: 'status', version: '0.1.0', rulesVersion: 'a1b2c3d4e5f60718', outboxDepth: 7, outboxBytes: 4_096 }));
    const agent = await until('the agent status to show', async () => {
      const { agents } = (await (await call('/api/v1/agents', { token: tokens.analyst })).json()) as { agents: Array<{ id: string; online: boolean; version: string | null; rulesVersion: string; outboxDepth: number }> };
      return agents.find((a) => a.id === agentId && a.version !== null);
    });
    expect(agent).toMatchObject({ online: true, version: '0.1.0', rulesVersion: 'a1b2c3d4e5f60718', outboxDepth: 7 });
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    ws.send('{"type":"nonsense"}');
    expect(await closed).toBe(4400);
    const after = await (await call('/metrics', { token: tokens.admin })).text();
    expect(after).toMatch(/^omwatch_rejects_total\{reason="[a-z_]+"\} 1$/m);
    expect(after).toMatch(/^omwatch_agents_connected 0$/m);
  });
});
