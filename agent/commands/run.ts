// `omwatch-agent run --stdout`: runs the sensors and prints each event as one JSON line. Start-up and
// shutdown are explicit step lists; every stop step runs.
import type { OmEvent } from '../../collector/protocol/index.ts';
import type { AgentConfig } from '../config/index.ts';
import { currentProduct, type HostIdentity } from '../host.ts';
import { toEvent } from '../events.ts';
import type { Logger } from '../log/index.ts';
import { createPlatformSensors } from '../sensors/index.ts';
import type { Observation } from '../sensors/types.ts';
import { JsonLinesSink } from './sink.ts';

export const AGENT_VERSION = '0.1.0';

export interface RunningAgent {
  /** Stops every sensor, reports `stopped`, and waits for the output to drain. */
  stop(): Promise<void>;
}

export async function runAgent(config: AgentConfig, host: HostIdentity, logger: Logger, out: NodeJS.WritableStream): Promise<RunningAgent> {
  const product = currentProduct();
  const sink = new JsonLinesSink(out, logger);
  const emit = (observation: Observation) => sink.write(toEvent(observation, host, product));
  const agentEvent = (fields: Extract<OmEvent, { category: 'agent' }>['fields']) =>
    sink.write(toEvent({ category: 'agent', timeMs: Date.now(), fields }, host, product), true);

  const sensors = createPlatformSensors({ config, hostId: host.id, logger });
  agentEvent({ Action: 'started', Version: AGENT_VERSION });
  for (const sensor of sensors.ordered) {
    await sensor.start(emit);
    const health = sensor.health();
    if (health.state !== 'ok') {
      logger.warn({ sensor: health.name, state: health.state, reason: health.reason }, 'sensor is not fully available');
      agentEvent({ Action: health.state === 'unavailable' ? 'sensor_unavailable' : 'sensor_error', Sensor: health.name, Message: health.reason ?? health.state });
    }
  }
  logger.info({ host: host.name, sensors: sensors.ordered.map((s) => s.name) }, 'agent running');

  return {
    async stop() {
      for (const sensor of sensors.ordered.toReversed()) {
        try {
          await sensor.stop();
        } catch (error) {
          logger.error({ err: error, sensor: sensor.name }, 'sensor did not stop cleanly');
        }
      }
      sink.reportPendingDrops();
      agentEvent({ Action: 'stopped', Version: AGENT_VERSION });
      await sink.drain();
    },
  };
}
