// Builds the sensors this host supports from the config and wires the ones that depend on each other
// (sessions read the process table and the sockets; attribution reads the sessions). Start order matters.
import type { AgentConfig } from '../config/index.ts';
import { createAttribution } from '../enrich/attribution.ts';
import type { Logger } from '../log/index.ts';
import { createConnectionSensor, type ConnectionSensor } from './connections/index.ts';
import { createMediaSensor, type MediaSensor } from './media/index.ts';
import { createProcessSensor, type ProcessSensor } from './processes/index.ts';
import { createCatalog, type RemoteAccessCatalog } from './sessions/catalog.ts';
import { createSessionSensor, type SessionSensor } from './sessions/index.ts';
import type { Sensor } from './types.ts';

export interface SensorSet {
  catalog: RemoteAccessCatalog;
  processes: ProcessSensor;
  connections: ConnectionSensor;
  sessions: SessionSensor;
  media: MediaSensor;
  /** In start order: sessions listen before the first process scan, connections need the table. */
  ordered: Sensor[];
}

export interface SensorSetOptions {
  config: AgentConfig;
  hostId: string;
  logger: Logger;
  procRoot?: string;
  sysRoot?: string;
}

export function createSensors({ config, hostId, logger, procRoot = '/proc', sysRoot = '/sys' }: SensorSetOptions): SensorSet {
  if (process.platform !== 'linux') {
    throw new Error(`live sensors run on Linux only for now; this is ${process.platform} (Windows parsers exist and are tested from fixtures)`);
  }
  const { sensors } = config;
  const catalog = createCatalog(config.remoteAccess.tools);
  const processes = createProcessSensor({
    hostId, procRoot, logger: logger.child({ sensor: 'processes' }),
    scanIntervalMs: sensors.processes.scanIntervalMs, maxCommandLineChars: sensors.processes.maxCommandLineChars,
  });
  const connections = createConnectionSensor({
    table: processes.table, catalog, procRoot, logger: logger.child({ sensor: 'connections' }),
    pollIntervalMs: sensors.connections.pollIntervalMs,
  });
  const sessions = createSessionSensor({
    hostId, processes, connections, logger: logger.child({ sensor: 'sessions' }), utmpPath: sensors.sessions.utmpPath,
  });
  processes.setAttribution(createAttribution(sessions.registry));
  const media = createMediaSensor({ sysRoot, intervalMs: sensors.media.pollIntervalMs, logger });
  const ordered: Sensor[] = [];
  if (sensors.sessions.enabled) ordered.push(sessions);
  if (sensors.processes.enabled) ordered.push(processes);
  if (sensors.connections.enabled) ordered.push(connections);
  if (sensors.media.enabled) ordered.push(media);
  return { catalog, processes, connections, sessions, media, ordered };
}
