// Loads the process events connector addon (native/proc-connector) from an explicit path and opens
// it, or says exactly why it cannot: not Linux, not root, not built, the kernel refused.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { endianness } from 'node:os';
import { fileURLToPath } from 'node:url';

/** Where `npm install` builds the addon; OMWATCH_PROC_CONNECTOR or the `addonPath` option point elsewhere (a packaged agent). */
export const DEFAULT_ADDON_PATH = fileURLToPath(new URL('../../../native/proc-connector/build/Release/proc_connector.node', import.meta.url));

export interface ConnectorOpenOptions {
  /** Records waiting for JS at most, and their bytes: past either, records are dropped and counted. */
  maxRecords?: number;
  maxBytes?: number;
  maxCommandLineBytes?: number;
  /** SO_RCVBUF(FORCE) of the netlink socket: how big a burst the kernel holds for us. */
  receiveBufferBytes?: number;
  /** Environment variables kept from /proc/PID/environ (the rest is never copied out). */
  environKeys?: readonly string[];
  /** JS is handed a batch this long after its first record at the latest, or at this many records. */
  batchMs?: number;
  batchRecords?: number;
  /** Forks, uid changes and exits on a second socket, read in bulk (Linux 6.6+); default on. */
  splitSockets?: boolean;
}

export interface ConnectorStats {
  messages: number;
  forks: number;
  execs: number;
  uidChanges: number;
  exits: number;
  /** ENOBUFS from the socket: the kernel dropped messages for us. */
  overflows: number;
  /** Records dropped because JS did not take them in time (the queue was at its bound). */
  dropped: number;
  /** Execs whose process had exited before its details could be read. */
  gone: number;
  errors: number;
  peakQueuedBytes: number;
  /** 1 when execs and the rest come on separate sockets (kernel filters), 0 on older kernels. */
  splitSockets: number;
  /** Times the kernel was found silent (its listener count at zero) and a new socket listened again. */
  relistens: number;
}

/** The addon's surface (native/proc-connector/src/proc_connector.c). */
export interface ConnectorAddon {
  open(options: ConnectorOpenOptions, onBatch: (batch: Buffer) => void): unknown;
  close(handle: unknown): void;
  stats(handle: unknown): ConnectorStats;
}

export interface Connector {
  stats(): ConnectorStats;
  close(): void;
}

export type ConnectorUnavailable = { ok: false; code: string; reason: string };
export type Loaded = { ok: true; addon: ConnectorAddon; path: string } | ConnectorUnavailable;

/** The addon at `path`, or why it cannot be used here. Checks are cheap and come before the load. */
export function loadConnector(path: string = process.env['OMWATCH_PROC_CONNECTOR'] || DEFAULT_ADDON_PATH): Loaded {
  if (process.platform !== 'linux') return { ok: false, code: 'CONNECTOR_PLATFORM', reason: `the process events connector is Linux's; this is ${process.platform}` };
  if (endianness() !== 'LE') return { ok: false, code: 'CONNECTOR_PLATFORM', reason: 'the addon\'s records are decoded as little-endian; this host is big-endian' };
  const uid = process.getuid?.();
  // Linux 6.6+ lets any user listen, but the details read at each exec (other users' exe, cwd,
  // environ) need root, and so does SO_RCVBUFFORCE: unprivileged, the scan says plainly what it misses.
  if (uid !== 0) return { ok: false, code: 'CONNECTOR_NOT_ROOT', reason: `not root (uid ${uid ?? '?'}): the process events connector is used as root only (other users' details at each exec need root)` };
  if (!existsSync(path)) return { ok: false, code: 'CONNECTOR_MISSING', reason: `addon not found at ${path} (not built: \`npm run install\` builds it, with a C compiler and Node's headers)` };
  try {
    const addon = createRequire(import.meta.url)(path) as ConnectorAddon;
    if (typeof addon.open !== 'function' || typeof addon.close !== 'function' || typeof addon.stats !== 'function') {
      return { ok: false, code: 'CONNECTOR_BAD_ADDON', reason: `${path} is not the proc-connector addon (expected open, close, stats)` };
    }
    return { ok: true, addon, path };
  } catch (error) {
    return { ok: false, code: 'CONNECTOR_LOAD_FAILED', reason: `cannot load ${path}: ${(error as Error).message}` };
  }
}

/** Opens the connector; a refusal (bind, listen) comes back as a reason with the kernel's errno text. */
export function openConnector(loaded: Extract<Loaded, { ok: true }>, options: ConnectorOpenOptions, onBatch: (batch: Buffer) => void): { ok: true; connector: Connector } | ConnectorUnavailable {
  let handle: unknown;
  try {
    handle = loaded.addon.open(options, onBatch);
  } catch (error) {
    const { code, message } = error as { code?: string; message: string };
    return { ok: false, code: code ?? 'CONNECTOR_OPEN_FAILED', reason: message };
  }
  let closed = false;
  return {
    ok: true,
    connector: {
      stats: () => loaded.addon.stats(handle),
      close() {
        if (closed) return;
        closed = true;
        loaded.addon.close(handle);
      },
    },
  };
}
