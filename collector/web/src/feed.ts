// The analyst's alerts, held while logged in: the newest first from the API, then every alert the
// live WebSocket pushes, merged by id and kept in time order, bounded. Pages subscribe to changes.
import { ApiError, get, request, socketUrl } from './api.ts';
import { alertFromCollector, alertFromLive, type AlertItem } from './types.ts';

/** Alerts held in the browser at most: the oldest go first past it (the API still has them). */
export const MAX_ALERTS = 50_000;
const PAGE = 1_000;

export type FeedStatus = 'loading' | 'live' | 'reconnecting' | 'closed';

export interface FeedChange {
  /** Alerts newly added (live or loaded); the view keeps its place when they land above it. */
  added: AlertItem[];
  /** Alerts changed in place (triaged). */
  changed: AlertItem[];
}

/** The API's order: newest first, and within one instant by stream, then the later seq first. */
function newestFirst(a: AlertItem, b: AlertItem): number {
  return (Date.parse(b.time) || 0) - (Date.parse(a.time) || 0) || (a.stream < b.stream ? 1 : a.stream > b.stream ? -1 : 0) || b.seq - a.seq;
}

export class AlertFeed {
  /** Newest first. */
  items: AlertItem[] = [];
  status: FeedStatus = 'loading';
  /** When each alert reached the browser (ms), for the "new" mark. */
  readonly arrivedAt = new Map<string, number>();
  readonly collectorIds = new Set<string>();
  loaded = 0;
  error: string | null = null;
  readonly #byId = new Map<string, AlertItem>();
  readonly #listeners = new Set<(change: FeedChange) => void>();
  #ws: WebSocket | null = null;
  #closed = false;
  #retryMs = 500;
  #retry: ReturnType<typeof setTimeout> | undefined;
  /** Live alerts not yet merged: a burst is merged once, not alert by alert. */
  #pending: AlertItem[] = [];
  #flush: ReturnType<typeof setTimeout> | undefined;
  #dropped = false;

  start(): void {
    this.#connect();
    void this.#load();
  }

  subscribe(listener: (change: FeedChange) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  get(id: string): AlertItem | undefined {
    return this.#byId.get(id);
  }

  /** A triage changed an alert: every view of it updates. */
  update(id: string, patch: Partial<AlertItem>): void {
    const item = this.#byId.get(id);
    if (!item) return;
    Object.assign(item, patch);
    this.#emit({ added: [], changed: [item] });
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#retry);
    clearTimeout(this.#flush);
    this.#ws?.close();
    this.status = 'closed';
    this.#listeners.clear();
  }

  /** Pages of alerts, newest first, until `next` runs out or the feed is full. */
  async #load(since?: string): Promise<void> {
    let cursor: string | null = null;
    try {
      do {
        const page: { alerts: AlertItem[]; next: string | null } = await get('/alerts', { limit: PAGE, cursor, since });
        if (this.#closed) return;
        this.loaded += page.alerts.length;
        this.#add(page.alerts, false);
        cursor = page.next;
      } while (cursor && this.items.length < MAX_ALERTS);
      // The collector's own (chain_broken, agent_offline) are kept apart from the agents' alerts.
      const own: { alerts: Array<Record<string, unknown>> } = await get('/collector-alerts', { limit: 1_000, since });
      if (this.#closed) return;
      const items = own.alerts.map(alertFromCollector).filter((item): item is AlertItem => item !== undefined);
      for (const item of items) this.collectorIds.add(item.id);
      this.#add(items, false);
      this.error = null;
    } catch (error) {
      this.error = error instanceof Error ? error.message : String(error);
      this.#emit({ added: [], changed: [] });
    }
    if (this.status === 'loading') this.status = this.#ws?.readyState === WebSocket.OPEN ? 'live' : 'reconnecting';
    this.#emit({ added: [], changed: [] });
  }

  #connect(): void {
    if (this.#closed) return;
    const ws = new WebSocket(socketUrl('/live'));
    this.#ws = ws;
    ws.addEventListener('open', () => {
      this.#retryMs = 500;
      if (this.status !== 'loading') this.status = 'live';
      this.#emit({ added: [], changed: [] });
      // Back after a drop: what was stored meanwhile comes from the API (duplicates merge by id).
      if (this.#dropped) {
        this.#dropped = false;
        void this.#load(this.items[0]?.time);
      }
    });
    ws.addEventListener('message', (message) => {
      let frame: { type?: unknown; agentId?: unknown; alert?: unknown };
      try {
        frame = JSON.parse(String(message.data)) as typeof frame;
      } catch {
        return;
      }
      if (frame.type !== 'alert' || typeof frame.alert !== 'object' || frame.alert === null) return;
      const alert = frame.alert as Record<string, unknown>;
      const collector = typeof alert['collectorAlert'] === 'object' && alert['collectorAlert'] !== null;
      const item = collector
        ? alertFromCollector(alert['collectorAlert'] as Record<string, unknown>)
        : alertFromLive(typeof frame.agentId === 'string' ? frame.agentId : '', alert);
      if (!item) return;
      if (collector) this.collectorIds.add(item.id);
      this.#pending.push(item);
      this.#flush ??= setTimeout(() => {
        this.#flush = undefined;
        const batch = this.#pending;
        this.#pending = [];
        this.#add(batch, true);
      }, 0);
    });
    ws.addEventListener('close', () => {
      if (this.#closed || this.#ws !== ws) return;
      if (this.status !== 'loading') this.status = 'reconnecting';
      this.#dropped = true;
      this.#emit({ added: [], changed: [] });
      // A login that ended (expired, logged out elsewhere, token revoked) is refused the upgrade:
      // asking who is logged in sends the page back to its login then; otherwise retry with backoff.
      const retry = () => {
        if (!this.#closed) this.#retry = setTimeout(() => this.#connect(), this.#retryMs);
      };
      request('GET', '/session').then(retry, (error: unknown) => {
        if (!(error instanceof ApiError && error.status === 401)) retry();
      });
      this.#retryMs = Math.min(this.#retryMs * 2, 10_000);
    });
  }

  #add(alerts: AlertItem[], live: boolean): void {
    const added: AlertItem[] = [];
    const now = Date.now();
    for (const alert of alerts) {
      if (this.#byId.has(alert.id)) continue;
      this.#byId.set(alert.id, alert);
      if (live) this.arrivedAt.set(alert.id, now);
      added.push(alert);
    }
    if (added.length === 0) return;
    // Usually the newest (live) go on top and a loaded page goes below; otherwise merged in order.
    const sortedAdded = added.slice().sort(newestFirst);
    const first = this.items[0];
    const last = this.items.at(-1);
    if (!first || newestFirst(sortedAdded.at(-1)!, first) <= 0) this.items = [...sortedAdded, ...this.items];
    else if (newestFirst(sortedAdded[0]!, last!) >= 0) this.items.push(...sortedAdded);
    else this.items = [...this.items, ...sortedAdded].sort(newestFirst);
    while (this.items.length > MAX_ALERTS) {
      const dropped = this.items.pop()!;
      this.#byId.delete(dropped.id);
      this.arrivedAt.delete(dropped.id);
    }
    this.#emit({ added, changed: [] });
  }

  #emit(change: FeedChange): void {
    for (const listener of this.#listeners) listener(change);
  }
}
