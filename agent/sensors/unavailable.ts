// A sensor whose source does not exist on this host: it says so once in the log, and in its health
// (and so in `snapshot`) for as long as the agent runs.
import type { Logger } from '../log/index.ts';
import type { Sensor, SensorHealth } from './types.ts';

export function unavailableSensor(name: string, source: string, reason: string, logger: Logger): Sensor {
  return {
    name,
    async start() {
      logger.warn({ sensor: name, source, reason }, 'sensor unavailable on this host');
    },
    async stop() {},
    health(): SensorHealth {
      return { name, state: 'unavailable', source, reason, counters: {} };
    },
  };
}
