// What the collector's HTTP API (/api/v1) answers, as the dashboard reads it. Everything here comes
// from the network and much of it from agents: rendered as text only, never trusted as markup.
// The API's own types are imported as types only: nothing of the server reaches the bundle.
import type { AlertItem } from '../../api/index.ts';
import type { SessionSummary } from '../../sessions.ts';

export type { AlertItem };

export type Role = 'admin' | 'analyst' | 'auditor';
export interface Me { role: Role; name: string; csrf: string }

export const LEVELS = ['critical', 'high', 'medium', 'low', 'informational'] as const;
export type Level = (typeof LEVELS)[number];
export const STATES = ['open', 'acknowledged', 'closed'] as const;
export type AlertState = (typeof STATES)[number];

export interface HostRef { id: string; name: string }

export interface TriageEntry { at: string; by: string; action: string; state: AlertState; assignee: string | null; comment: string | null }

export interface AlertDetail {
  alert: AlertItem;
  events: unknown[];
  rule: { id: string; text: string | null; source?: string | null };
  history: TriageEntry[];
}

/** The collector's own alerts (chain_broken, agent_offline), as the live feed carries them. */
export interface CollectorAlert {
  id: string;
  time: string;
  type: string;
  agentId: string | null;
  stream: string | null;
  summary: string;
  details: string;
}

export interface AgentItem {
  id: string;
  name: string;
  hostId: string | null;
  enrolledAt: string;
  lastSeenAt: string | null;
  revokedAt: string | null;
  online: boolean;
  version: string | null;
  rulesVersion: string | null;
  outboxDepth: number | null;
}

export type SessionItem = SessionSummary & { live: boolean };

export interface SessionDetail { session: SessionItem; events: unknown[]; eventsTruncated?: boolean; alerts: AlertItem[] }

/** `by` is the token's `role:name`; `status` the HTTP status the request got. */
export interface AccessEntry { id: number; at: string; tokenId: string; by: string; action: string; target: string; status: number }

export interface TokenItem { id: string; role: string; name: string; createdAt: string; revokedAt: string | null; lastUsedAt: string | null }

/** An event as the API may give it: the envelope itself, or a stored row around it. */
export interface EventView {
  id: string;
  time: string;
  category: string;
  host: string;
  fields: Record<string, unknown>;
  raw: unknown;
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Reads an event whichever way it is wrapped; missing parts read as empty. */
export function eventView(value: unknown): EventView {
  const outer = isRecord(value) ? value : {};
  const event = isRecord(outer['record']) ? outer['record'] : isRecord(outer['event']) ? outer['event'] : outer;
  const host = isRecord(event['host']) ? event['host'] : {};
  return {
    id: typeof event['id'] === 'string' ? event['id'] : '',
    time: typeof event['time'] === 'string' ? event['time'] : '',
    category: typeof event['category'] === 'string' ? event['category'] : isRecord(event['rule']) ? 'alert' : '',
    host: typeof host['name'] === 'string' ? host['name'] : '',
    fields: isRecord(event['fields']) ? event['fields'] : {},
    raw: event,
  };
}

/** An alert pushed on the live feed (the agent's record), as the list shows alerts. */
export function alertFromLive(agentId: string, alert: Record<string, unknown>): AlertItem | undefined {
  const rule = isRecord(alert['rule']) ? alert['rule'] : undefined;
  if (typeof alert['id'] !== 'string' || !rule || typeof rule['title'] !== 'string') return undefined;
  const host = isRecord(alert['host']) && typeof alert['host']['name'] === 'string' ? { id: String(alert['host']['id'] ?? ''), name: alert['host']['name'] } : null;
  const level = (LEVELS as readonly unknown[]).includes(rule['level']) ? (rule['level'] as Level) : 'informational';
  return {
    id: alert['id'], time: typeof alert['time'] === 'string' ? alert['time'] : new Date().toISOString(), agentId,
    stream: typeof alert['stream'] === 'string' ? alert['stream'] : '', seq: typeof alert['seq'] === 'number' ? alert['seq'] : 0,
    host, level,
    rule: { id: String(rule['id'] ?? ''), title: rule['title'], author: String(rule['author'] ?? ''), tags: Array.isArray(rule['tags']) ? rule['tags'].map(String) : [] },
    sessionId: typeof alert['sessionId'] === 'string' ? alert['sessionId'] : null,
    summary: typeof alert['summary'] === 'string' ? alert['summary'] : '',
    eventIds: Array.isArray(alert['eventIds']) ? alert['eventIds'].map(String) : [],
    state: 'open', assignee: null,
  };
}

/** A collector alert as a row of the feed: its own kind, never opened as an agent's alert. */
export function alertFromCollector(alert: Record<string, unknown>): AlertItem | undefined {
  if (typeof alert['id'] !== 'string' || typeof alert['type'] !== 'string') return undefined;
  return {
    id: alert['id'], time: typeof alert['time'] === 'string' ? alert['time'] : new Date().toISOString(),
    agentId: typeof alert['agentId'] === 'string' ? alert['agentId'] : '', stream: typeof alert['stream'] === 'string' ? alert['stream'] : '', seq: 0,
    host: null, level: alert['type'] === 'chain_broken' ? 'critical' : 'medium',
    rule: { id: `collector:${alert['type']}`, title: `Collector: ${alert['type']}`, author: 'omwatch collector', tags: [] },
    sessionId: null, summary: typeof alert['summary'] === 'string' ? alert['summary'] : '', eventIds: [], state: 'open', assignee: null,
  };
}
