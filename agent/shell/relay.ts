// The recorded shell's pty relay (native/pty-relay): a thread that moves the session's bytes between the
// pty and the user's terminal as `script` does, and queues what it moved as records for the recording.
// Loaded from an explicit path, as the process events connector is (a packaged agent carries it as an
// asset): OMWATCH_PTY_RELAY, else where `npm install` builds it.
//
// The user's terminal: the shell client names the terminal it runs in (its stdin and stdout), and the
// daemon opens that device itself if it is a terminal the user owns (sshd and login give the user their
// terminal): then output reaches the user without crossing the client, and keys reach the shell the same
// way. Opening it grants the user nothing: it is their own terminal. Otherwise (no terminal, or one the
// user does not own) bytes travel through the client's socket.
import { closeSync, existsSync, fstatSync, lstatSync, openSync, constants as fsConstants } from 'node:fs';
import { createRequire } from 'node:module';
import { endianness } from 'node:os';
import { fileURLToPath } from 'node:url';

export const DEFAULT_RELAY_PATH = fileURLToPath(new URL('../../native/pty-relay/build/Release/pty_relay.node', import.meta.url));

type Handle = object & { readonly __relay: unique symbol };

interface RelayAddon {
  open(options: { master: number; terminal: number; mark: string; recordInput: number; limitBytes: number; totalLimitBytes: number }, notify: () => void): Handle;
  take(handle: Handle): Buffer[] | undefined;
  input(handle: Handle, bytes: Buffer): boolean;
  notice(handle: Handle, bytes: Buffer): void;
  resize(handle: Handle, cols: number, rows: number): boolean;
  pause(handle: Handle, paused: boolean): void;
  finish(handle: Handle): void;
  close(handle: Handle): void;
  stats(handle: Handle): RelayStats;
}

export interface RelayStats {
  /** When a key last reached the shell (ms since the epoch). */
  lastInputMs: number;
  /** Bytes read from the pty, and shown (without the command reports). */
  readBytes: number;
  outputBytes: number;
  /** Bytes lost for want of memory (a record, or output for the user's terminal): 0 unless the host ran out. */
  lostBytes: number;
  queuedBytes: number;
  peakQueuedBytes: number;
  /** Times the queue reached its limit, so the pty was not read until the recording caught up. */
  throttled: number;
  /** Times the thread held off reading for the budget of all sessions (totalLimitBytes). */
  budgetWaits: number;
  /** The queue is at its limit now. */
  behind: boolean;
}

export type RelayRecord =
  | { type: 'o' | 'i' | 'c'; atMs: number; bytes: Buffer }
  | { type: 'r'; atMs: number; cols: number; rows: number }
  /** 'h': the user's terminal hung up; 'w': input() has room again; 'x': the end. */
  | { type: 'h' | 'w' | 'x'; atMs: number };

export class RelayUnavailable extends Error {}

let loaded: RelayAddon | undefined;

/** The addon, loaded once; throws RelayUnavailable saying why it cannot be used here. */
export function loadRelay(path: string = process.env['OMWATCH_PTY_RELAY'] || DEFAULT_RELAY_PATH): RelayAddon {
  if (loaded) return loaded;
  if (process.platform !== 'linux') throw new RelayUnavailable(`the recorded shell's pty relay is built for Linux; this is ${process.platform}`);
  if (endianness() !== 'LE') throw new RelayUnavailable('the pty relay\'s records are decoded as little-endian; this host is big-endian');
  if (!existsSync(path)) throw new RelayUnavailable(`the recorded shell's pty relay is not built (no ${path}): \`npm run install\` builds it, with a C compiler and Node's headers`);
  let addon: RelayAddon;
  try {
    addon = createRequire(import.meta.url)(path) as RelayAddon;
  } catch (error) {
    throw new RelayUnavailable(`cannot load the pty relay ${path}: ${(error as Error).message}`);
  }
  if (typeof addon.open !== 'function' || typeof addon.take !== 'function') throw new RelayUnavailable(`${path} is not the pty relay addon`);
  loaded = addon;
  return addon;
}

export interface RelayOptions {
  master: number;
  /** The user's terminal, opened by openUserTerminal; the relay takes a copy. */
  terminal: number | undefined;
  mark: string;
  recordInput: boolean;
  /** What this relay may queue before the pty is not read (the recording is behind). */
  limitBytes: number;
  /** What every relay of the process may queue together (the last one opened sets it for all). */
  totalLimitBytes: number;
  /** Records are waiting: call take(). */
  notify: () => void;
}

export class PtyRelay {
  readonly #addon: RelayAddon;
  readonly #handle: Handle;
  #closed = false;

  constructor(options: RelayOptions) {
    this.#addon = loadRelay();
    this.#handle = this.#addon.open({
      master: options.master, terminal: options.terminal ?? -1, mark: options.mark,
      recordInput: options.recordInput ? 1 : 0, limitBytes: options.limitBytes, totalLimitBytes: options.totalLimitBytes,
    }, options.notify);
  }

  /** Every record queued since the last call, in order. */
  take(): RelayRecord[] {
    return (this.#addon.take(this.#handle) ?? []).flatMap(decodeRecords);
  }

  /** False when the shell is 1 MiB of keys behind: send no more until a 'w' record. */
  input(bytes: Buffer): boolean {
    return this.#closed || this.#addon.input(this.#handle, bytes);
  }

  notice(bytes: Buffer): void {
    if (!this.#closed) this.#addon.notice(this.#handle, bytes);
  }

  resize(cols: number, rows: number): boolean {
    return !this.#closed && this.#addon.resize(this.#handle, cols, rows);
  }

  pause(paused: boolean): void {
    if (!this.#closed) this.#addon.pause(this.#handle, paused);
  }

  /** The shell has exited: the rest of its output is read, then an 'x' record ends the records. */
  finish(): void {
    if (!this.#closed) this.#addon.finish(this.#handle);
  }

  /** Stops the thread; what it queued is still there for take(). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#addon.close(this.#handle);
  }

  stats(): RelayStats {
    return this.#addon.stats(this.#handle);
  }
}

const HEADER_BYTES = 16;

/** Splits the addon's records (layout in pty_relay.c); the bodies are views into the buffer. */
export function decodeRecords(buffer: Buffer): RelayRecord[] {
  const records: RelayRecord[] = [];
  let offset = 0;
  while (offset + HEADER_BYTES <= buffer.length) {
    const type = String.fromCharCode(buffer[offset]!);
    const length = buffer.readUInt32LE(offset + 4);
    const atMs = buffer.readDoubleLE(offset + 8);
    const bytes = buffer.subarray(offset + HEADER_BYTES, offset + HEADER_BYTES + length);
    offset += HEADER_BYTES + ((length + 7) & ~7);
    if (type === 'o' || type === 'i' || type === 'c') records.push({ type, atMs, bytes });
    else if (type === 'r') {
      const [cols, rows] = bytes.toString('latin1').split('x').map(Number);
      records.push({ type, atMs, cols: cols!, rows: rows! });
    } else if (type === 'h' || type === 'w' || type === 'x') records.push({ type, atMs });
  }
  return records;
}

/** Terminals a shell client may name: pseudo-terminals and the virtual consoles (not tty0, "the current one"). */
const TERMINAL_PATH = /^\/dev\/(pts\/\d{1,6}|tty[1-9]\d{0,2})$/;

/**
 * Opens the terminal a client named, if it is a terminal and `uid`'s (as sshd and login make a user's
 * terminal); undefined otherwise, and the bytes then go through the client. A new open, so the flags the
 * relay sets (non-blocking) are not those of the user's other processes on it.
 */
export function openUserTerminal(path: string | undefined, uid: number): number | undefined {
  if (!path || !TERMINAL_PATH.test(path)) return undefined;
  // Checked before the open too, so that root opens nothing the user does not own (a console not in
  // use would be set up by the open), and after it on the fd itself, so nothing swapped in between counts.
  let before;
  try {
    before = lstatSync(path);
  } catch {
    return undefined;
  }
  if (!before.isCharacterDevice() || before.uid !== uid) return undefined;
  let fd: number;
  try {
    fd = openSync(path, fsConstants.O_RDWR | fsConstants.O_NOCTTY | fsConstants.O_NONBLOCK | fsConstants.O_NOFOLLOW);
  } catch {
    return undefined;
  }
  const stat = fstatSync(fd);
  if (!stat.isCharacterDevice() || stat.uid !== uid || stat.rdev !== before.rdev) {
    closeSync(fd);
    return undefined;
  }
  return fd;
}
