// The sessions sensor: remote sessions start and end, with who and from where. SSH sessions come from
// sshd's process tree (seen in the same scan as their processes); VNC, RDP, telnet and remote-access
// tools from established connections to the ports they listen on.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { Logger } from '../../log/index.ts';
import type { RemoteSession } from '../../../collector/protocol/index.ts';
import type { ConnectionSensor, ConnectionsView, RemoteConnection } from '../connections/index.ts';
import type { ProcEntry, ProcessSensor, ProcessTable, ScanResult } from '../processes/index.ts';
import type { Emit, Sensor, SensorHealth } from '../types.ts';
import { parseSshConnection, parseSshdTitle, parseUtmp, UtmpType, type UtmpRecord } from './parse.ts';
import { SessionRegistry, sessionId, type RemoteSessionRecord } from './registry.ts';

export { SessionRegistry, type RemoteSessionRecord } from './registry.ts';

/** How long a session process may keep its monitor's title before it is no longer watched. */
const TITLE_WATCH_MS = 30_000;

/** How long an SSH login may stay without a channel before it is announced as a tunnel-only session. */
const SSH_CHANNEL_GRACE_MS = 1_000;

/** Consecutive polls a socket session's connection must be missing from before the session ends. */
const SOCKET_MISSES_TO_END = 2;

export interface SessionSensorOptions {
  hostId: string;
  processes: ProcessSensor;
  connections: ConnectionSensor;
  logger: Logger;
  utmpPath?: string;
}

export interface SessionSensor extends Sensor {
  readonly registry: SessionRegistry;
  /** Records of utmp (`/run/utmp`), for the snapshot; empty where the file does not exist. */
  utmp(): UtmpRecord[];
}

export function createSessionSensor({
  hostId, processes, connections, logger, utmpPath = '/run/utmp',
}: SessionSensorOptions): SessionSensor {
  const registry = new SessionRegistry();
  const announced = new Set<string>();
  const misses = new Map<string, number>();
  /** sshd session processes still carrying their monitor's title, re-read each scan (bounded by time). */
  const watchedTitles = new Map<ProcEntry, number>();
  /** Whether the socket still exists at all (not just as a recognised remote connection). */
  const socketStillOpen = (inode: number) => connections.reader.read().some((s) => s.inode === inode && s.state === 'ESTABLISHED');
  const counters = { started: 0, ended: 0, utmpMalformed: 0, utmpReadErrors: 0, forgedTitles: 0 };
  let utmpMissingSaid = false;
  let emit: Emit | undefined;

  function announce(record: RemoteSessionRecord): void {
    delete record.pending;
    if (!emit || announced.has(record.id)) return;
    announced.add(record.id);
    counters.started++;
    emit({ category: 'remote_session', timeMs: record.startTimeMs, fields: sessionFields(record, 'start') });
  }

  function end(record: RemoteSessionRecord, nowMs: number): void {
    if (record.pending) announce(record); // a login that ended before it opened a channel still happened
    registry.retire(record.id);
    if (!announced.delete(record.id) || !emit) return;
    counters.ended++;
    const fields = sessionFields(record, 'end');
    fields.DurationSeconds = Math.max(0, Math.round((nowMs - record.startTimeMs) / 100) / 10);
    emit({ category: 'remote_session', timeMs: nowMs, fields });
  }

  function readUtmp(): UtmpRecord[] {
    let data: Buffer;
    try {
      data = readFileSync(utmpPath);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        if (!utmpMissingSaid) logger.info({ utmpPath }, 'no utmp file: SSH sessions are found from sshd processes and sockets alone');
        utmpMissingSaid = true;
      } else {
        counters.utmpReadErrors++;
      }
      return [];
    }
    const parsed = parseUtmp(data);
    counters.utmpMalformed += parsed.malformed;
    return parsed.records;
  }

  /**
   * The client endpoint of an SSH session: the connection held by both the session process and its
   * monitor (the session process alone also holds the sockets of `-L` forwards it opens), else
   * utmp's address, else a child's SSH_CONNECTION.
   */
  function sshSource(entry: ProcEntry, priv: ProcEntry | undefined, table: ProcessTable): Pick<RemoteSessionRecord, 'sourceIp' | 'sourcePort' | 'localPort'> {
    const own = connections.reader.socketsOf(entry.pid);
    const shared = priv ? connections.reader.socketsOf(priv.pid) : own;
    const inodes = new Set([...own].filter((inode) => shared.has(inode)));
    if (inodes.size > 0) {
      const socket = connections.reader.read().find((s) => s.state === 'ESTABLISHED' && s.inode !== undefined && inodes.has(s.inode));
      if (socket) return { sourceIp: socket.remoteIp, sourcePort: socket.remotePort, localPort: socket.localPort };
    }
    const record = readUtmp().find((r) => r.type === UtmpType.USER_PROCESS && r.pid === priv?.pid);
    if (record?.addr) return { sourceIp: record.addr };
    // ut_host is a host name the client's resolver chose; only an address is a SourceIp.
    if (record?.host && isIP(record.host)) return { sourceIp: record.host };
    for (const candidate of table.entries()) {
      if (candidate.ppid !== entry.pid || candidate.uid !== entry.uid) continue;
      const ssh = parseSshConnection(candidate.env?.['SSH_CONNECTION']);
      if (ssh) return { sourceIp: ssh.clientIp, sourcePort: ssh.clientPort, localPort: ssh.serverPort };
    }
    return {};
  }

  function startSsh(entry: ProcEntry, user: string | undefined, tty: string | undefined, channel: boolean, table: ProcessTable): void {
    const priv = table.get(entry.ppid);
    const record: RemoteSessionRecord = {
      id: sessionId('ssh', hostId, entry.pid, entry.startTimeMs),
      protocol: 'ssh',
      tool: 'sshd',
      leaderPid: entry.pid,
      leaderStartMs: entry.startTimeMs,
      image: entry.image,
      startTimeMs: entry.startTimeMs,
      ...sshSource(entry, priv, table),
    };
    const name = entry.user ?? user;
    if (name !== undefined) record.user = name;
    if (entry.uid !== undefined) record.uid = entry.uid;
    const terminal = tty ?? entry.tty;
    if (terminal) record.tty = terminal;
    if (entry.auditSessionId !== undefined) record.auditSessionId = entry.auditSessionId;
    registry.add(record);
    // Announced once the client opens a channel (its terminal is known then), or after a grace period
    // for a tunnel that never does; its processes are attributed to it from now on either way.
    if (channel) announce(record);
    else record.pending = true;
  }

  /** Pending SSH logins: announce those that opened a channel, or waited long enough without one. */
  function settlePending(table: ProcessTable, nowMs: number): void {
    for (const record of registry.all()) {
      if (!record.pending || record.leaderPid === undefined) continue;
      const leader = table.get(record.leaderPid);
      if (!leader || leader.startTimeMs !== record.leaderStartMs) continue;
      table.refreshTitle(leader);
      const title = parseSshdTitle(leader.commandLine);
      if (!title?.channel && nowMs - record.startTimeMs < SSH_CHANNEL_GRACE_MS) continue;
      const changes: Partial<RemoteSessionRecord> = {};
      const tty = title?.tty ?? leader.tty;
      if (tty) changes.tty = tty;
      if (!record.sourceIp) Object.assign(changes, sshSource(leader, table.get(leader.ppid), table));
      registry.update(record, changes);
      announce(record);
    }
  }

  /** Registers the session if `entry` is sshd's per-session process under its root monitor. */
  function considerSshd(entry: ProcEntry, table: ProcessTable): void {
    const title = parseSshdTitle(entry.commandLine);
    // Anyone can title a process `sshd: root@pts/0`; only sshd's root-owned monitor can be its parent.
    const parent = table.get(entry.ppid);
    const underMonitor = parent !== undefined && parent.uid === 0 && parseSshdTitle(parent.commandLine)?.role === 'priv';
    // A child of the monitor still showing the monitor's title has not set its own yet: watch it.
    if (underMonitor && title?.role === 'priv' && !watchedTitles.has(entry)) watchedTitles.set(entry, Date.now());
    if (title?.role !== 'session') return;
    if (!underMonitor) {
      counters.forgedTitles++;
      return;
    }
    if (!registry.byLeader(entry.pid, entry.startTimeMs)) startSsh(entry, title.user, title.tty, title.channel === true, table);
  }

  function onScan(result: ScanResult, table: ProcessTable): void {
    // A remote-access service that just started children probably just took a connection: look now,
    // so the children's events already carry the session (the poll's own timer may be a second away).
    const servicePids = new Set<number>();
    for (const service of connections.latest().services) if (service.tool.session === 'socket' && service.owner) servicePids.add(service.owner.pid);
    if (servicePids.size > 0 && result.created.some((entry) => servicePids.has(entry.ppid))) connections.poll();
    // The per-session process first carries its monitor's title, so a retitle may be the session.
    for (const list of [result.created, result.retitled, result.execed]) {
      for (const entry of list) {
        if (!entry.kernelThread && entry.commandLine.startsWith('sshd')) considerSshd(entry, table);
      }
    }
    const now = Date.now();
    for (const [entry, since] of watchedTitles) {
      if (table.get(entry.pid) !== entry || now - since > TITLE_WATCH_MS) {
        watchedTitles.delete(entry);
        continue;
      }
      if (table.refreshTitle(entry) && parseSshdTitle(entry.commandLine)?.role !== 'priv') {
        watchedTitles.delete(entry);
        considerSshd(entry, table);
      }
    }
    settlePending(table, now);
    for (const entry of result.exited) {
      const record = registry.byLeader(entry.pid, entry.startTimeMs);
      if (record) end(record, now);
    }
    // A leader that exited but is not reaped yet still has a /proc entry; its session is over.
    for (const record of registry.all()) {
      if (record.leaderPid === undefined || record.socketInode !== undefined) continue;
      const leader = table.get(record.leaderPid);
      if (leader && leader.startTimeMs === record.leaderStartMs && table.isZombie(leader)) end(record, now);
    }
  }

  function onConnections(view: ConnectionsView): void {
    const live = new Set<number>();
    for (const connection of view.connections) {
      if (connection.direction !== 'inbound' || connection.tool.session !== 'socket') continue;
      const inode = connection.socket.inode!;
      live.add(inode);
      const id = sessionId(connection.tool.protocol, hostId, inode, connection.socket.remoteIp, connection.socket.remotePort);
      if (registry.get(id)) continue;
      const record = socketSession(id, connection, processes.table, view.atMs);
      registry.add(record);
      announce(record);
    }
    for (const record of registry.all()) {
      if (record.socketInode === undefined) continue;
      if (live.has(record.socketInode)) {
        misses.delete(record.id);
        continue;
      }
      // One poll that misses a connection (a listener restarting, a torn read of /proc/net/tcp) is
      // not the end of a session; two in a row are.
      const missed = (misses.get(record.id) ?? 0) + 1;
      if (missed < SOCKET_MISSES_TO_END && connections.reader.counters.reads > 0 && socketStillOpen(record.socketInode)) {
        misses.set(record.id, missed);
        continue;
      }
      misses.delete(record.id);
      end(record, view.atMs);
    }
  }

  processes.onScan(onScan);
  connections.onUpdate(onConnections);

  return {
    name: 'sessions',
    registry,
    utmp: () => readUtmp(),
    async start(target) {
      emit = target;
      readUtmp(); // says once, now, if this host keeps no utmp
      // Sessions found before start (the baseline scan) are live now: say so.
      for (const record of registry.all()) announce(record);
    },
    async stop() {
      emit = undefined;
    },
    health(): SensorHealth {
      const source = `sshd processes, ${utmpPath}, inbound connections to remote-access ports`;
      const health: SensorHealth = { name: 'sessions', state: 'ok', source, counters: { ...counters, active: registry.size } };
      const notes: string[] = [];
      if (utmpMissingSaid) notes.push(`no ${utmpPath}: SSH sessions come from sshd's processes and sockets alone`);
      if (counters.forgedTitles > 0) notes.push(`${counters.forgedTitles} processes titled like an SSH session without sshd's monitor as parent were ignored`);
      if (notes.length > 0) health.notes = notes;
      if (process.getuid?.() !== 0) {
        health.state = 'degraded';
        health.reason = 'not root: sockets cannot be joined to their processes, so SourceIp comes from utmp or SSH_CONNECTION only, and tool sessions carry no process';
      }
      return health;
    },
  };
}

function socketSession(id: string, connection: RemoteConnection, table: ProcessTable, atMs: number): RemoteSessionRecord {
  const { socket, owner, tool } = connection;
  const record: RemoteSessionRecord = {
    id,
    protocol: tool.protocol,
    tool: tool.tool,
    sourceIp: socket.remoteIp,
    sourcePort: socket.remotePort,
    localPort: socket.localPort,
    socketInode: socket.inode!,
    startTimeMs: atMs,
  };
  const leader = owner ? table.get(owner.pid) : undefined;
  if (leader) {
    record.leaderPid = leader.pid;
    record.leaderStartMs = leader.startTimeMs;
    record.image = leader.image;
    if (leader.user !== undefined) record.user = leader.user;
    if (leader.uid !== undefined) record.uid = leader.uid;
    // Xvnc :1 … — processes on that display belong to the session.
    const display = /(?:^|\s)(:\d+)(?:\s|$)/.exec(leader.commandLine)?.[1];
    if (display && tool.protocol === 'vnc') record.display = display;
  }
  return record;
}

export function sessionFields(record: RemoteSessionRecord, action: 'start' | 'end'): RemoteSession {
  const fields: RemoteSession = {
    SessionId: record.id,
    Action: action,
    Protocol: record.protocol,
    Tool: record.tool,
    StartTime: new Date(record.startTimeMs).toISOString(),
  };
  if (record.user !== undefined) fields.User = record.user;
  if (record.sourceIp !== undefined) fields.SourceIp = record.sourceIp;
  if (record.sourcePort !== undefined) fields.SourcePort = record.sourcePort;
  if (record.localPort !== undefined) fields.LocalPort = record.localPort;
  if (record.leaderPid !== undefined) fields.ProcessId = record.leaderPid;
  if (record.image !== undefined) fields.Image = record.image;
  if (record.tty !== undefined) fields.Tty = record.tty;
  return fields;
}
