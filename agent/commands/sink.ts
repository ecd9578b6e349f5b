// Writes events and alerts as JSON lines to a stream with a bound on what may wait in memory: past the
// bound, events are dropped, counted, and a `buffer_dropped` agent event says how many once output flows
// again. Alerts pass the bound, as they pass plain events in the outbox.
import type { OmEvent } from '../../collector/protocol/index.ts';
import type { Logger } from '../log/index.ts';
import type { Alert } from '../../rules/engine/index.ts';
import { v7 as uuidv7 } from 'uuid';

const MAX_PENDING_BYTES = 16 * 1024 * 1024;

/** Where the agent's events and alerts go: JSON lines on stdout, or the outbox. */
export interface RecordSink {
  /** `priority` records (alerts, the agent's own facts) must not be dropped by a bound. */
  write(record: OmEvent | Alert, priority?: boolean): void;
  /** Says how many records were dropped, if any are still unsaid (at stop). */
  reportPendingDrops(): void;
  /** Resolves once everything written so far is handed on (to the OS, or committed). */
  drain(): Promise<void>;
}

export class JsonLinesSink implements RecordSink {
  readonly #out: NodeJS.WritableStream & { writableLength?: number };
  readonly #logger: Logger;
  #dropped = 0;
  #lastEvent: OmEvent | undefined;

  constructor(out: NodeJS.WritableStream, logger: Logger) {
    this.#out = out;
    this.#logger = logger;
  }

  /** `priority` records (alerts, the agent's own facts) pass the bound: they are few and must not be lost. */
  write(event: OmEvent | Alert, priority = false): void {
    if (!priority && (this.#out.writableLength ?? 0) > MAX_PENDING_BYTES) {
      if (this.#dropped === 0) this.#logger.warn('output is not keeping up; dropping events until it drains');
      this.#dropped++;
      return;
    }
    if ('category' in event) {
      if (this.#dropped > 0) this.#reportDrops(event);
      this.#lastEvent = event;
    }
    this.#out.write(`${JSON.stringify(event)}\n`);
  }

  get dropped(): number {
    return this.#dropped;
  }

  /** Says how many events were dropped, if any are still unsaid (at stop). */
  reportPendingDrops(): void {
    if (this.#dropped > 0 && this.#lastEvent) this.#reportDrops(this.#lastEvent);
  }

  /** Resolves once everything written so far has been handed to the OS. */
  async drain(): Promise<void> {
    await new Promise<void>((resolve) => this.#out.write('', () => resolve()));
  }

  #reportDrops(next: OmEvent): void {
    const count = this.#dropped;
    this.#dropped = 0;
    this.#logger.warn({ count }, 'output drained; events were dropped');
    const template = this.#lastEvent ?? next;
    this.#out.write(`${JSON.stringify({
      id: uuidv7(), time: new Date().toISOString(), host: template.host, product: template.product,
      category: 'agent', fields: { Action: 'buffer_dropped', Count: count, Message: 'stdout did not keep up' },
    })}\n`);
  }
}
