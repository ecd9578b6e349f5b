// `omwatch-agent snapshot`: everything the sensors see on this host right now, once: processes with
// their remote session, active sessions, listening remote-access services, connections, media, health.
import { release } from 'node:os';
import type { AgentConfig } from '../config/index.ts';
import type { Logger } from '../log/index.ts';
import type { HostIdentity } from '../host.ts';
import { createPlatformSensors } from '../sensors/index.ts';
import { sessionFields } from '../sensors/sessions/index.ts';
import type { SensorHealth } from '../sensors/types.ts';
import { printable, table } from './text.ts';

export interface Snapshot {
  host: HostIdentity & { platform: string; kernel: string; privileged: boolean };
  processes: Array<{
    pid: number; ppid: number; user: string | null; image: string; commandLine: string; startTime: string;
    sessionId: string | null; tty: string | null; cwd: string | null;
  }>;
  sessions: Array<Record<string, unknown>>;
  services: Array<{ tool: string; protocol: string; ip: string; port: number; matchedBy: string; pid: number | null; image: string | null; user: string | null }>;
  connections: Array<{ tool: string; direction: string; localIp: string; localPort: number; remoteIp: string; remotePort: number; pid: number | null; image: string | null }>;
  media: unknown[];
  sensors: SensorHealth[];
}

export async function takeSnapshot(config: AgentConfig, host: HostIdentity, logger: Logger): Promise<Snapshot> {
  const sensors = createPlatformSensors({ config, hostId: host.id, logger });
  const noop = () => {};
  // Start each sensor with a sink that drops: a start takes the first look, which is what we print.
  for (const sensor of sensors.ordered) await sensor.start(noop);
  for (const sensor of sensors.ordered.toReversed()) await sensor.stop();
  const health = sensors.ordered.map((sensor) => sensor.health());
  const hostFacts = { ...host, platform: process.platform, kernel: release(), privileged: process.getuid?.() === 0 };
  if (!sensors.linux) {
    return { host: hostFacts, processes: [], sessions: [], services: [], connections: [], media: [], sensors: health };
  }
  const { processes, sessions, connections, media } = sensors.linux;
  const view = connections.latest();
  return {
    host: hostFacts,
    processes: [...processes.table.entries()]
      .filter((entry) => !entry.kernelThread)
      .sort((a, b) => a.pid - b.pid)
      .map((entry) => ({
        pid: entry.pid,
        ppid: entry.ppid,
        user: entry.user ?? (entry.uid === undefined ? null : String(entry.uid)),
        image: entry.image,
        commandLine: entry.commandLine,
        startTime: new Date(entry.startTimeMs).toISOString(),
        sessionId: typeof entry.sessionId === 'string' ? entry.sessionId : null,
        tty: entry.tty ?? null,
        cwd: entry.cwd ?? null,
      })),
    sessions: sessions.registry.all().map((record) => {
      const { Action: _action, ...fields } = sessionFields(record, 'start');
      return fields;
    }),
    services: view.services.map((s) => ({
      tool: s.tool.tool, protocol: s.tool.protocol, ip: s.ip, port: s.port, matchedBy: s.matchedBy,
      pid: s.owner?.pid ?? null, image: s.owner?.image || null, user: s.owner?.user ?? null,
    })),
    connections: view.connections.map((c) => ({
      tool: c.tool.tool, direction: c.direction, localIp: c.socket.localIp, localPort: c.socket.localPort,
      remoteIp: c.socket.remoteIp, remotePort: c.socket.remotePort, pid: c.owner?.pid ?? null, image: c.owner?.image || null,
    })),
    media: media.snapshot(),
    sensors: health,
  };
}

export function renderSnapshot(snapshot: Snapshot, width: number): string {
  const { host } = snapshot;
  const out: string[] = [];
  out.push(printable(`Host ${host.name} (id ${host.id}, from ${host.idSource}), ${host.platform} ${host.kernel}${host.privileged ? '' : ', NOT root: some details are hidden (see sensors)'}`));
  out.push('', 'Sensors');
  out.push(table(['NAME', 'STATE', 'SOURCE', 'NOTE'], snapshot.sensors.map((s) => [s.name, s.state, s.source, [s.reason, ...(s.notes ?? [])].filter(Boolean).join('; ') || counterSummary(s.counters)]), width));
  out.push('', `Remote sessions (${snapshot.sessions.length})`);
  out.push(snapshot.sessions.length === 0 ? '  none' : table(
    ['SESSION', 'PROTOCOL', 'USER', 'FROM', 'PORT', 'TTY', 'SINCE'],
    snapshot.sessions.map((s) => [
      String(s['SessionId']), String(s['Protocol']), String(s['User'] ?? '?'),
      s['SourceIp'] ? `${String(s['SourceIp'])}${s['SourcePort'] ? `:${String(s['SourcePort'])}` : ''}` : '?',
      String(s['LocalPort'] ?? ''), String(s['Tty'] ?? ''), String(s['StartTime'] ?? ''),
    ]), width));
  out.push('', `Remote-access services listening (${snapshot.services.length})`);
  out.push(snapshot.services.length === 0 ? '  none' : table(
    ['TOOL', 'ADDRESS', 'BY', 'PID', 'IMAGE'],
    snapshot.services.map((s) => [s.tool, `${s.ip}:${s.port}`, s.matchedBy, String(s.pid ?? '?'), s.image ?? '?']), width));
  out.push('', `Remote-access connections (${snapshot.connections.length})`);
  out.push(snapshot.connections.length === 0 ? '  none' : table(
    ['TOOL', 'DIRECTION', 'LOCAL', 'REMOTE', 'PID', 'IMAGE'],
    snapshot.connections.map((c) => [c.tool, c.direction, `${c.localIp}:${c.localPort}`, `${c.remoteIp}:${c.remotePort}`, String(c.pid ?? '?'), c.image ?? '?']), width));
  out.push('', `Removable media (${snapshot.media.length})`);
  out.push(snapshot.media.length === 0 ? '  none' : snapshot.media.map((m) => `  ${printable(JSON.stringify(m))}`).join('\n'));
  out.push('', `Processes (${snapshot.processes.length})`);
  out.push(table(
    ['PID', 'PPID', 'USER', 'SESSION', 'TTY', 'STARTED', 'COMMAND'],
    snapshot.processes.map((p) => [String(p.pid), String(p.ppid), p.user ?? '?', p.sessionId ?? '-', p.tty ?? '-', p.startTime.slice(0, 19), p.commandLine || `[${p.image}]`]),
    width));
  return out.join('\n');
}

function counterSummary(counters: Record<string, number>): string {
  return Object.entries(counters).filter(([, v]) => v !== 0).map(([k, v]) => `${k}=${v}`).join(' ');
}
