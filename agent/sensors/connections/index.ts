// The connection sensor: which remote-access services listen, which connections reach them, and
// where remote-access tools connect out to. Reports each such connection once as network_connection.
import type { Logger } from '../../log/index.ts';
import type { NetworkConnection } from '../../../collector/protocol/index.ts';
import type { ProcEntry, ProcessTable } from '../processes/index.ts';
import type { RemoteAccessCatalog, RemoteTool } from '../sessions/catalog.ts';
import type { Emit, Sensor, SensorHealth, SocketEntry } from '../types.ts';
import { periodic } from '../periodic.ts';
import { SocketReader, type SocketTables } from './sockets.ts';

export interface ProcessRef {
  pid: number;
  image: string;
  user?: string;
}

/** A remote-access service or tool listening on this host. */
export interface RemoteService {
  tool: RemoteTool;
  ip: string;
  port: number;
  /** How it was recognised: its process is a catalogued tool, or it listens on a catalogued port. */
  matchedBy: 'process' | 'port';
  owner?: ProcessRef;
}

/** An established connection to a remote-access service, or from a remote-access tool. */
export interface RemoteConnection {
  tool: RemoteTool;
  direction: 'inbound' | 'outbound';
  socket: SocketEntry;
  owner?: ProcessRef;
}

export interface ConnectionsView {
  atMs: number;
  services: RemoteService[];
  connections: RemoteConnection[];
}

export type ConnectionsListener = (view: ConnectionsView) => void;

export interface ConnectionSensorOptions {
  table: ProcessTable;
  catalog: RemoteAccessCatalog;
  logger: Logger;
  procRoot?: string;
  pollIntervalMs?: number;
}

export interface ConnectionSensor extends Sensor {
  readonly reader: SocketReader;
  /** Reads the sockets now and returns what they show; the timer calls this too. */
  poll(): ConnectionsView;
  latest(): ConnectionsView;
  onUpdate(listener: ConnectionsListener): void;
}

export function createConnectionSensor({
  table, catalog, logger, procRoot = '/proc', pollIntervalMs = 1000,
}: ConnectionSensorOptions): ConnectionSensor {
  const reader = new SocketReader(procRoot);
  const toolOf = new WeakMap<ProcEntry, RemoteTool | null>();
  const reported = new Set<number>();
  const listeners: ConnectionsListener[] = [];
  const privileged = process.getuid?.() === 0;
  let view: ConnectionsView = { atMs: 0, services: [], connections: [] };
  let emit: Emit | undefined;
  let emitted = 0;
  let unowned = 0;
  let pollErrors = 0;
  let listenerErrors = 0;
  let lastError: string | undefined;

  function processTool(entry: ProcEntry): RemoteTool | undefined {
    let tool = toolOf.get(entry);
    if (tool === undefined) {
      tool = entry.kernelThread ? null : catalog.byProcess(entry.image, entry.name) ?? null;
      toolOf.set(entry, tool);
    }
    return tool ?? undefined;
  }

  function ref(pid: number | undefined): ProcessRef | undefined {
    if (pid === undefined) return undefined;
    const entry = table.get(pid);
    if (!entry) return { pid, image: '' };
    return entry.user === undefined ? { pid, image: entry.image } : { pid, image: entry.image, user: entry.user };
  }

  function poll(tables?: SocketTables): ConnectionsView {
    const sockets = reader.read(tables);
    const toolPids = new Map<number, RemoteTool>();
    for (const entry of table.entries()) {
      const tool = processTool(entry);
      if (tool) toolPids.set(entry.pid, tool);
    }
    const listening = sockets.filter((s) => s.state === 'LISTEN' && s.inode);
    const established = sockets.filter((s) => s.state === 'ESTABLISHED' && s.inode);
    // Sockets of catalogued processes, wherever they listen or connect; then the owners of
    // catalogued ports held by other processes (a renamed tool), which may need a wider search.
    const toolSockets = new Map<number, number>();
    for (const pid of toolPids.keys()) for (const inode of reader.socketsOf(pid)) toolSockets.set(inode, pid);
    const portListeners = new Set(listening.filter((s) => catalog.byListenPort(s.localPort) && !toolSockets.has(s.inode!)).map((s) => s.inode!));
    const portOwners = reader.owners(portListeners, []);

    const services: RemoteService[] = [];
    for (const socket of listening) {
      const toolPid = toolSockets.get(socket.inode!);
      const byProcess = toolPid === undefined ? undefined : toolPids.get(toolPid);
      const byPort = portListeners.has(socket.inode!) ? catalog.byListenPort(socket.localPort) : undefined;
      const tool = byProcess ?? byPort;
      if (!tool) continue;
      const service: RemoteService = { tool, ip: socket.localIp, port: socket.localPort, matchedBy: byProcess ? 'process' : 'port' };
      const owner = ref(toolPid ?? portOwners.get(socket.inode!));
      if (owner) service.owner = owner;
      services.push(service);
    }
    const serviceFor = (socket: SocketEntry): RemoteService | undefined => services.find((service) => service.port === socket.localPort
      && (service.ip === socket.localIp || service.ip === '0.0.0.0' || service.ip === '::'));
    // A tool talking to itself over loopback (its GUI to its daemon) is not a remote connection.
    const byLocalEndpoint = new Map(established.map((s) => [`${s.localIp}|${s.localPort}`, s]));
    const selfTalk = (socket: SocketEntry, tool: RemoteTool): boolean => {
      if (!isLoopback(socket.remoteIp)) return false;
      const peer = byLocalEndpoint.get(`${socket.remoteIp}|${socket.remotePort}`);
      const peerPid = peer?.inode === undefined ? undefined : toolSockets.get(peer.inode);
      return peerPid !== undefined && toolPids.get(peerPid) === tool;
    };

    const inbound = established.filter((s) => serviceFor(s) !== undefined);
    const servicePids = new Set<number>();
    for (const service of services) if (service.owner) servicePids.add(service.owner.pid);
    const likelyOwners: number[] = [];
    for (const entry of table.entries()) if (servicePids.has(entry.ppid)) likelyOwners.push(entry.pid);
    const inboundOwners = reader.owners(new Set(inbound.map((s) => s.inode!).filter((inode) => !toolSockets.has(inode))), likelyOwners);
    const connections: RemoteConnection[] = [];
    for (const socket of established) {
      const service = serviceFor(socket);
      const pid = toolSockets.get(socket.inode!) ?? inboundOwners.get(socket.inode!);
      let connection: RemoteConnection;
      if (service) connection = { tool: service.tool, direction: 'inbound', socket };
      else if (pid !== undefined && toolPids.has(pid)) connection = { tool: toolPids.get(pid)!, direction: 'outbound', socket };
      else continue;
      if (selfTalk(socket, connection.tool)) continue;
      const owner = ref(pid);
      if (owner) connection.owner = owner;
      else unowned++;
      connections.push(connection);
    }
    const live = new Set(sockets.map((s) => s.inode ?? 0));
    reader.retain(live);
    for (const inode of reported) if (!live.has(inode)) reported.delete(inode);
    view = { atMs: Date.now(), services, connections };
    for (const listener of listeners) {
      try {
        listener(view);
      } catch (error) {
        listenerErrors++;
        lastError = (error as Error).message;
        logger.error({ err: error }, 'a connections listener failed');
      }
    }
    if (emit) {
      for (const connection of connections) {
        if (reported.has(connection.socket.inode!)) continue;
        reported.add(connection.socket.inode!);
        emitted++;
        emit({ category: 'network_connection', timeMs: view.atMs, fields: connectionFields(connection) });
      }
    }
    return view;
  }

  // The timer reads the socket tables off the event loop, then polls with them; poll() called directly
  // (a new service process, a snapshot) reads them at once.
  const onPollError = (error: unknown) => {
    pollErrors++;
    lastError = (error as Error).message;
    logger.error({ err: error }, 'connection poll failed');
  };
  const timer = periodic(async () => void poll(await reader.readTables()), pollIntervalMs, onPollError);

  return {
    name: 'connections',
    reader,
    poll,
    latest: () => view,
    onUpdate(listener) {
      listeners.push(listener);
    },
    async start(target) {
      emit = target;
      // The first look is taken at once (the sensors started after this one read its view); then the timer.
      try {
        poll();
      } catch (error) {
        onPollError(error);
      }
      timer.start();
    },
    async stop() {
      timer.stop();
      emit = undefined;
    },
    health(): SensorHealth {
      const counters = { ...reader.counters, emitted, unownedConnections: unowned, services: view.services.length, pollErrors, listenerErrors };
      const source = `${procRoot}/net/tcp, ${procRoot}/net/tcp6, ${procRoot}/PID/fd`;
      const notes = [...reader.missing].map((file) => `no ${file} on this host`);
      if ((pollErrors > 0 || listenerErrors > 0) && lastError) {
        return { name: 'connections', state: 'degraded', source, counters, reason: `a poll failed: ${lastError}` };
      }
      if (reader.missing.size === 2 || (reader.counters.reads > 0 && reader.counters.readErrors >= reader.counters.reads * 2)) {
        return { name: 'connections', state: 'unavailable', source, counters, reason: `${procRoot}/net/tcp and tcp6 cannot be read` };
      }
      if (notes.length > 0 && privileged) return { name: 'connections', state: 'ok', source, counters, notes };
      if (!privileged) {
        return {
          name: 'connections', state: 'degraded', source, counters,
          reason: 'not root: /proc/PID/fd of other users cannot be read, so connections are matched by port only and carry no Image or ProcessId',
        };
      }
      return { name: 'connections', state: 'ok', source, counters };
    },
  };
}

function isLoopback(ip: string): boolean {
  return ip.startsWith('127.') || ip === '::1';
}

export function connectionFields(connection: RemoteConnection): NetworkConnection {
  const { socket, owner, tool } = connection;
  const inbound = connection.direction === 'inbound';
  const fields: NetworkConnection = {
    Protocol: 'tcp',
    Initiated: !inbound,
    SourceIp: inbound ? socket.remoteIp : socket.localIp,
    SourcePort: inbound ? socket.remotePort : socket.localPort,
    DestinationIp: inbound ? socket.localIp : socket.remoteIp,
    DestinationPort: inbound ? socket.localPort : socket.remotePort,
    Tool: tool.tool,
  };
  if (owner) {
    fields.ProcessId = owner.pid;
    if (owner.image) fields.Image = owner.image;
    if (owner.user !== undefined) fields.User = owner.user;
  }
  return fields;
}
