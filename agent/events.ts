// Wraps a sensor's observation in the event envelope of design.md §3. `seq`, `stream` and the hash
// chain are the outbox's to assign; until it exists an event leaves without them.
import { v7 as uuidv7 } from 'uuid';
import type { Host, OmEvent, Product } from '../collector/protocol/index.ts';
import type { Observation } from './sensors/types.ts';

export function toEvent(observation: Observation, host: Host, product: Product): OmEvent {
  return {
    id: uuidv7(),
    time: new Date(observation.timeMs).toISOString(),
    host: { id: host.id, name: host.name },
    category: observation.category,
    product,
    fields: observation.fields,
  } as OmEvent;
}
