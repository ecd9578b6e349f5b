// The outbox as the agent's record sink. Every record is checked against the protocol's schema first:
// one the collector would refuse would block its stream for good, so it is replaced by an `agent`
// event saying what was wrong. Nothing is dropped here otherwise: the outbox's byte cap decides.
import { AlertSchema, EventSchema, type OmEvent } from '../../collector/protocol/index.ts';
import type { Alert } from '../../rules/engine/index.ts';
import type { RecordSink } from '../commands/sink.ts';
import type { Logger } from '../log/index.ts';
import type { Outbox } from './types.ts';

type AgentFields = Extract<OmEvent, { category: 'agent' }>['fields'];

export class OutboxSink implements RecordSink {
  #outbox: Outbox;
  readonly #logger: Logger;
  readonly #agentEvent: (fields: AgentFields) => OmEvent;
  #refused = 0;

  constructor(outbox: Outbox, logger: Logger, agentEvent: (fields: AgentFields) => OmEvent) {
    this.#outbox = outbox;
    this.#logger = logger;
    this.#agentEvent = agentEvent;
  }

  /** Writes go to this outbox from now on (a new stream replaced the old one). */
  use(outbox: Outbox): void {
    this.#outbox = outbox;
  }

  get refused(): number {
    return this.#refused;
  }

  write(record: OmEvent | Alert): void {
    const checked = ('rule' in record ? AlertSchema : EventSchema).safeParse(record);
    if (checked.success) {
      this.#outbox.append(record);
      return;
    }
    this.#refused++;
    const issue = checked.error.issues[0];
    const reason = `${'rule' in record ? 'alert' : `${record.category} event`} refused: ${issue ? `${issue.path.join('.')}: ${issue.message}` : 'invalid'}`;
    this.#logger.error({ id: record.id, reason }, 'a record does not fit the protocol; reported instead of sent');
    this.#outbox.append(this.#agentEvent({ Action: 'sensor_error', Code: 'RECORD_INVALID', Message: reason.slice(0, 1_000), Count: this.#refused }));
  }

  reportPendingDrops(): void {}

  async drain(): Promise<void> {
    this.#outbox.flush();
  }
}
