// The live feed: alerts fan out, as they are committed, to every subscribed analyst connection. A
// subscriber that cannot keep up is closed rather than buffered without bound.
import type WebSocket from 'ws';
import type { LiveAlertFrame } from './protocol/index.ts';

/** Past this much unsent data a subscriber is too slow and is closed. */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;
const TOO_SLOW = 4408;

export class LiveFeed {
  readonly counters = { published: 0, subscribers: 0, slowClosed: 0 };
  readonly #subscribers = new Set<WebSocket>();

  subscribe(ws: WebSocket): void {
    this.#subscribers.add(ws);
    this.counters.subscribers = this.#subscribers.size;
    ws.on('close', () => {
      this.#subscribers.delete(ws);
      this.counters.subscribers = this.#subscribers.size;
    });
    // Subscribers only listen: anything they send is ignored; a frame ws refuses (too large, bad UTF-8)
    // closes that subscriber, never the collector.
    ws.on('message', () => {});
    ws.on('error', () => {});
  }

  publish(agentId: string, alert: Record<string, unknown>): void {
    this.counters.published++;
    const frame: LiveAlertFrame = { type: 'alert', agentId, alert };
    const text = JSON.stringify(frame);
    for (const ws of this.#subscribers) {
      if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
        this.counters.slowClosed++;
        ws.close(TOO_SLOW, 'subscriber too slow');
        continue;
      }
      ws.send(text);
    }
  }

  close(): void {
    for (const ws of this.#subscribers) ws.close(1001, 'collector stopping');
  }
}
