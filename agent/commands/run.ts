// `omwatch-agent run --stdout`: sensors → enrichment → rules, printing each event, and each alert it
// raises, as one JSON line. Start-up and shutdown are explicit step lists; every stop step runs.
import type { OmEvent } from '../../collector/protocol/index.ts';
import type { AgentConfig } from '../config/index.ts';
import { currentProduct, type HostIdentity } from '../host.ts';
import { toEvent } from '../events.ts';
import type { Logger } from '../log/index.ts';
import { createPlatformSensors } from '../sensors/index.ts';
import type { Observation } from '../sensors/types.ts';
import { createCatalog } from '../sensors/sessions/catalog.ts';
import { SessionRegistry } from '../sensors/sessions/registry.ts';
import { createEnricher } from '../enrich/index.ts';
import { RuleSet } from './ruleset.ts';
import type { RecordSink } from './sink.ts';
import { ShellServer } from '../shell/server.ts';
import { AGENT_VERSION } from '../defaults.ts';
import type { AgentDescription, Delivery } from './deliver.ts';


export interface RunningAgent {
  /** The rule set in effect now (a hash of its files) and each sensor's state, for status frames. */
  describe(): AgentDescription;
  /** Stops every sensor, reports `stopped`, and waits for the output to drain. */
  stop(): Promise<void>;
}

export interface RunOptions {
  rulePaths: string[];
  policyPath?: string;
  /** Serve recorded shells on this socket, delivering their records and live output through `delivery`. */
  shell?: { socketPath: string; spoolDir: string; delivery: Pick<Delivery, 'live' | 'setSessions' | 'onKill' | 'recordingBehind'> };
}

export async function runAgent(config: AgentConfig, host: HostIdentity, logger: Logger, sink: RecordSink, options: RunOptions): Promise<RunningAgent> {
  const product = currentProduct();
  const agentEvent = (fields: Extract<OmEvent, { category: 'agent' }>['fields']) =>
    sink.write(toEvent({ category: 'agent', timeMs: Date.now(), fields }, host, product), true);

  agentEvent({ Action: 'started', Version: AGENT_VERSION });
  const rules = new RuleSet({
    rulePaths: options.rulePaths, hostName: host.name, logger: logger.child({ part: 'rules' }),
    ...(options.policyPath ? { policyPath: options.policyPath } : {}),
    onLoaded: ({ rules: count, errors, version }) => agentEvent({ Action: 'rules_loaded', Count: count, Version: version, Message: `${count} rules loaded, ${errors} not loaded` }),
  });
  const sensors = createPlatformSensors({ config, hostId: host.id, logger });
  const enrich = createEnricher({
    judge: () => rules.judge,
    registry: sensors.linux?.sessions.registry ?? new SessionRegistry(),
    catalog: sensors.linux?.catalog ?? createCatalog(config.remoteAccess.tools),
  });
  const emit = (observation: Observation) => {
    const event = toEvent(enrich(observation), host, product);
    sink.write(event);
    for (const alert of rules.engine.evaluate(event)) sink.write(alert, true);
  };
  const onHangup = () => {
    logger.info('SIGHUP: reloading rules and policy');
    rules.reload();
  };
  process.on('SIGHUP', onHangup);
  rules.watch();

  for (const sensor of sensors.ordered) {
    await sensor.start(emit);
    const health = sensor.health();
    if (health.state !== 'ok') {
      logger.warn({ sensor: health.name, state: health.state, reason: health.reason }, 'sensor is not fully available');
      agentEvent({ Action: health.state === 'unavailable' ? 'sensor_unavailable' : 'sensor_error', Sensor: health.name, Message: health.reason ?? health.state });
    }
  }
  let shell: ShellServer | undefined;
  if (options.shell) {
    const { delivery } = options.shell;
    shell = new ShellServer({
      socketPath: options.shell.socketPath, spoolDir: options.shell.spoolDir, judge: () => rules.judge, emit,
      // Recording chunks are evidence, not observations: no rule reads them, straight to the outbox.
      record: (observation) => sink.write(toEvent(observation, host, product)),
      live: (frame) => delivery.live(frame), recordingBehind: () => delivery.recordingBehind(),
      logger: logger.child({ part: 'shell' }),
    });
    const server = shell;
    server.onChange(() => delivery.setSessions(server.live()));
    delivery.onKill(({ sessionId, by }) => {
      if (!server.kill(sessionId, by)) logger.warn({ sessionId, by }, 'kill for a session that is not live here');
    });
    try {
      await shell.start();
    } catch (error) {
      // Sessions are then refused by the shell (strict) or spooled: the agent's other work goes on.
      shell = undefined;
      logger.error({ err: (error as Error).message, socket: options.shell.socketPath }, 'recorded shell: cannot listen');
      agentEvent({ Action: 'sensor_error', Sensor: 'shell', Message: `cannot listen on ${options.shell.socketPath}: ${(error as Error).message}` });
    }
  }
  logger.info({ host: host.name, sensors: sensors.ordered.map((s) => s.name) }, 'agent running');

  return {
    describe: () => ({
      rulesVersion: rules.version,
      sensors: sensors.ordered.map((sensor) => {
        const { name, state } = sensor.health();
        return { name, state };
      }),
    }),
    async stop() {
      process.off('SIGHUP', onHangup);
      await shell?.stop();
      rules.close();
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
