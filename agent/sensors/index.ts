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
import { unavailableSensor } from './unavailable.ts';

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

/** The Windows sources whose parsers exist (and are tested from fixtures) but are not wired live yet. */
const WINDOWS_SOURCES: Record<string, string> = {
  processes: 'si.processes()',
  sessions: 'query user / qwinsta',
  connections: 'netstat -ano',
  media: 'Win32_DiskDrive (USB)',
};

/**
 * The sensors of the platform the agent starts on. Linux has live sources; on any other platform each
 * sensor reports itself unavailable, once in the log and in its health, rather than pretending.
 */
export function createPlatformSensors(options: SensorSetOptions, platform: NodeJS.Platform = process.platform): { ordered: Sensor[]; linux?: SensorSet } {
  if (platform === 'linux') {
    const linux = createSensors(options);
    return { ordered: linux.ordered, linux };
  }
  const ordered = Object.entries(WINDOWS_SOURCES).map(([name, source]) => unavailableSensor(
    name, platform === 'win32' ? source : 'none',
    `no live ${name} source on ${platform} in this version${platform === 'win32' ? `: the ${source} parser exists and is tested from fixtures, its live wiring is not built yet` : ''}`,
    options.logger,
  ));
  return { ordered };
}

/** The Linux sensors, wired: sessions read the process table and sockets; attribution reads sessions. */
export function createSensors({ config, hostId, logger, procRoot = '/proc', sysRoot = '/sys' }: SensorSetOptions): SensorSet {
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
