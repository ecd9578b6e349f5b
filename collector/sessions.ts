// Recorded shell sessions at the collector: the live ones (which agent holds each, who watches its
// output, where a kill goes) and the stored ones (listed from their start and end events, and their
// recording put back together from its chunks as an asciicast v2 file).
import type WebSocket from 'ws';
import { SHELL_TOOL, type PtyFrame, type SessionKillFrame, type SessionsFrame, type SessionStateFrame, type SessionWatchFrame, type WireEvent } from './protocol/index.ts';
import type { Store, StoredRecord } from './store/types.ts';

/** Past this much unsent output a watcher is too slow and is closed (the recording has it all). */
const MAX_WATCHER_BUFFERED_BYTES = 8 * 1024 * 1024;
const TOO_SLOW = 4408;

interface Holder {
  agentId: string;
  ws: WebSocket;
  user: string;
  startedAt: string;
}

export class LiveSessions {
  readonly counters = { relayed: 0, unannounced: 0, kills: 0, watchers: 0, slowClosed: 0 };
  readonly #holders = new Map<string, Holder>();
  readonly #byConnection = new Map<WebSocket, Set<string>>();
  readonly #watchers = new Map<string, Set<WebSocket>>();

  /** An agent connection's `sessions` frame: exactly these sessions are live on it now. */
  announce(agentId: string, ws: WebSocket, frame: SessionsFrame): void {
    const before = this.#byConnection.get(ws);
    if (!before) ws.once('close', () => this.disconnected(ws));
    const now = new Set(frame.live.map((s) => s.sessionId));
    for (const id of before ?? []) if (!now.has(id)) this.#gone(id, ws);
    for (const session of frame.live) {
      const holder = this.#holders.get(session.sessionId);
      // A session id is the agent's own: another agent cannot take over one that is live elsewhere.
      if (holder && holder.agentId !== agentId) continue;
      this.#holders.set(session.sessionId, { agentId, ws, user: session.user, startedAt: session.startedAt });
      // Watched already (the agent reconnected): its output is wanted again.
      if (holder?.ws !== ws && this.#watchers.has(session.sessionId)) this.#tellWatched(session.sessionId, true);
    }
    this.#byConnection.set(ws, now);
  }

  /**
   * The agent's connection closed: its sessions are not reachable, though they may still run. Watchers
   * are told (`session.offline`) and kept: the agent announces them again when it reconnects.
   */
  disconnected(ws: WebSocket): void {
    for (const id of this.#byConnection.get(ws) ?? []) {
      if (this.#holders.get(id)?.ws !== ws) continue;
      this.#holders.delete(id);
      for (const watcher of this.#watchers.get(id) ?? []) watcher.send(stateFrame('session.offline', id));
    }
    this.#byConnection.delete(ws);
  }

  /** Output from an agent: relayed only for a session that agent announced. */
  relay(agentId: string, frame: PtyFrame): void {
    const holder = this.#holders.get(frame.sessionId);
    if (!holder || holder.agentId !== agentId) {
      this.counters.unannounced++;
      return;
    }
    const watchers = this.#watchers.get(frame.sessionId);
    if (!watchers) return;
    const text = JSON.stringify(frame);
    for (const ws of watchers) {
      if (ws.bufferedAmount > MAX_WATCHER_BUFFERED_BYTES) {
        this.counters.slowClosed++;
        ws.close(TOO_SLOW, 'watcher too slow');
        continue;
      }
      ws.send(text);
      this.counters.relayed++;
    }
  }

  live(): Array<{ sessionId: string; agentId: string; user: string; startedAt: string }> {
    return [...this.#holders].map(([sessionId, h]) => ({ sessionId, agentId: h.agentId, user: h.user, startedAt: h.startedAt }));
  }

  /** An analyst's live view; told `session.end` and closed if the session is not (or no longer) live. */
  watch(sessionId: string, ws: WebSocket): void {
    ws.on('message', () => {});
    ws.on('error', () => {});
    if (!this.#holders.has(sessionId)) {
      ws.send(stateFrame('session.end', sessionId));
      ws.close(1000, 'session not live');
      return;
    }
    let watchers = this.#watchers.get(sessionId);
    if (!watchers) this.#watchers.set(sessionId, (watchers = new Set()));
    watchers.add(ws);
    this.counters.watchers++;
    // The agent relays a session's output only while someone watches it.
    if (watchers.size === 1) this.#tellWatched(sessionId, true);
    ws.on('close', () => {
      watchers.delete(ws);
      this.counters.watchers--;
      if (watchers.size === 0 && this.#watchers.get(sessionId) === watchers) {
        this.#watchers.delete(sessionId);
        this.#tellWatched(sessionId, false);
      }
    });
  }

  #tellWatched(sessionId: string, watched: boolean): void {
    const holder = this.#holders.get(sessionId);
    if (!holder || holder.ws.readyState !== holder.ws.OPEN) return;
    const frame: SessionWatchFrame = { type: 'session.watch', sessionId, watched };
    holder.ws.send(JSON.stringify(frame));
  }

  /** Asks the holding agent to end the session; false if no connected agent holds it. */
  kill(sessionId: string, by: string): boolean {
    const holder = this.#holders.get(sessionId);
    if (!holder || holder.ws.readyState !== holder.ws.OPEN) return false;
    const frame: SessionKillFrame = { type: 'session.kill', sessionId, by };
    holder.ws.send(JSON.stringify(frame));
    this.counters.kills++;
    return true;
  }

  close(): void {
    for (const watchers of this.#watchers.values()) for (const ws of watchers) ws.close(1001, 'collector stopping');
  }

  #gone(sessionId: string, ws: WebSocket): void {
    if (this.#holders.get(sessionId)?.ws !== ws) return;
    this.#holders.delete(sessionId);
    for (const watcher of this.#watchers.get(sessionId) ?? []) {
      watcher.send(stateFrame('session.end', sessionId));
      watcher.close(1000, 'session ended');
    }
    this.#watchers.delete(sessionId);
  }
}

function stateFrame(type: SessionStateFrame['type'], sessionId: string): string {
  const frame: SessionStateFrame = { type, sessionId };
  return JSON.stringify(frame);
}

export interface SessionSummary {
  id: string;
  /** The agent whose stream holds the session's start. */
  agentId: string;
  host: string;
  user: string | null;
  ticket: string | null;
  start: string;
  end: string | null;
  /** `open`: started, no end stored (live, or its agent stopped reporting); `refused` by the policy gate. */
  state: 'open' | 'ended' | 'refused';
  endedBy: string | null;
  exitCode: number | null;
  flagged: boolean;
  reason: string | null;
}

type SessionFields = Record<string, unknown>;

/** Every recorded shell session the store holds, oldest first. */
export function listSessions(store: Pick<Store, 'records'>): SessionSummary[] {
  const sessions = new Map<string, SessionSummary>();
  for (const stored of store.records({ category: 'remote_session' })) fold(sessions, stored);
  return [...sessions.values()].sort((a, b) => a.start.localeCompare(b.start));
}

/** One recorded shell session, read through the session index (not a scan of every session). */
export function sessionSummary(store: Pick<Store, 'records'>, sessionId: string): SessionSummary | undefined {
  const sessions = new Map<string, SessionSummary>();
  for (const stored of store.records({ sessionId, category: 'remote_session' })) fold(sessions, stored);
  return sessions.get(sessionId);
}

/** Adds a remote_session event to the summaries: its start, end or refusal. Other tools' sessions are left out. */
function fold(sessions: Map<string, SessionSummary>, stored: StoredRecord): void {
  const event = JSON.parse(stored.body) as WireEvent;
  const f = event.fields as SessionFields;
  if (f['Tool'] !== SHELL_TOOL || typeof f['SessionId'] !== 'string') return;
  const id = f['SessionId'];
  const text = (key: string) => (typeof f[key] === 'string' ? (f[key] as string) : null);
  const summary = sessions.get(id) ?? {
    id, agentId: stored.agentId, host: event.host.name, user: text('User'), ticket: text('Ticket'), start: text('StartTime') ?? event.time, end: null,
    state: 'open' as const, endedBy: null, exitCode: null, flagged: false, reason: text('Reason'),
  };
  if (f['Action'] === 'start') {
    summary.flagged = f['Flagged'] === true;
    summary.reason = text('Reason');
  } else if (f['Action'] === 'end') {
    summary.end = event.time;
    summary.state = 'ended';
    summary.endedBy = text('EndedBy');
    summary.exitCode = typeof f['ExitCode'] === 'number' ? f['ExitCode'] : null;
  } else if (f['Action'] === 'refused') {
    summary.end = event.time;
    summary.state = 'refused';
    summary.reason = text('Reason');
  }
  sessions.set(id, summary);
}

export class SessionNotFoundError extends Error {}

/**
 * A session's recording as an asciicast v2 file: the header from its start event, then its chunks in
 * order. `missing` gives the chunk numbers the store does not hold (dropped by the agent's buffer, or not
 * yet delivered) as inclusive ranges, `missingCount` how many; the caller must say so, the file alone
 * would look whole. Work and output grow with the chunks held, never with the numbers an agent wrote
 * on them (a chunk numbered 2^52 is one range, not 2^52 entries).
 */
export function sessionCast(store: Pick<Store, 'records'>, sessionId: string): { cast: string; missing: ChunkRange[]; missingCount: number; ended: boolean } {
  let start: WireEvent | undefined;
  let end: WireEvent | undefined;
  const chunks = new Map<number, string>();
  for (const stored of store.records({ sessionId, kind: 'event' })) {
    const event = JSON.parse(stored.body) as WireEvent;
    const f = event.fields as SessionFields;
    // The first of each wins: the agent writes each once; anything after it is not the session's.
    if (event.category === 'session_recording') {
      if (!chunks.has(f['Chunk'] as number)) chunks.set(f['Chunk'] as number, f['Data'] as string);
    } else if (event.category === 'remote_session' && f['Action'] === 'start') start ??= event;
    else if (event.category === 'remote_session' && f['Action'] === 'end') end ??= event;
  }
  if (!start) throw new SessionNotFoundError(`no recorded shell session ${sessionId} in this store`);
  const f = start.fields as SessionFields;
  const header = {
    version: 2,
    width: typeof f['Width'] === 'number' ? f['Width'] : 80,
    height: typeof f['Height'] === 'number' ? f['Height'] : 24,
    timestamp: Math.floor(Date.parse(typeof f['StartTime'] === 'string' ? f['StartTime'] : start.time) / 1000),
    title: `omwatch ${sessionId}: ${String(f['User'] ?? '?')}@${start.host.name}`,
    env: { TERM: typeof f['Term'] === 'string' ? f['Term'] : 'xterm', SHELL: typeof f['Image'] === 'string' ? f['Image'] : '' },
    session_id: sessionId,
    user: f['User'] ?? null,
    host: start.host.name,
    ticket: f['Ticket'] ?? null,
  };
  const numbers = [...chunks.keys()].sort((a, b) => a - b);
  const claimed = (end?.fields as SessionFields | undefined)?.['Chunks'];
  const expected = Math.max(typeof claimed === 'number' ? claimed : 0, (numbers.at(-1) ?? -1) + 1);
  const missing: ChunkRange[] = [];
  let missingCount = 0;
  const parts = [`${JSON.stringify(header)}\n`];
  let next = 0;
  for (const n of [...numbers, expected]) {
    if (n > next) {
      missing.push([next, n - 1]);
      missingCount += n - next;
    }
    const data = chunks.get(n);
    if (data !== undefined) parts.push(data);
    next = n + 1;
  }
  return { cast: parts.join(''), missing, missingCount, ended: end !== undefined };
}

/** Chunk numbers from, to (inclusive). */
export type ChunkRange = [number, number];

/** Ranges as people read them, in ASCII (it goes in HTTP headers too): `3, 7-9`; past `max` ranges, how many more. */
export function rangesText(ranges: readonly ChunkRange[], max = 20): string {
  const shown = ranges.slice(0, max).map(([from, to]) => (from === to ? String(from) : `${from}-${to}`));
  return ranges.length > max ? `${shown.join(', ')} and ${ranges.length - max} more ranges` : shown.join(', ');
}
