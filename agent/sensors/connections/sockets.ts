// Reads the host's TCP sockets and finds which process owns the ones that matter. Owners come from
// /proc/PID/fd links (root only); the likely owners are asked first, a full walk is rate-limited.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SocketEntry } from '../types.ts';
import { parseProcNetTcp, socketInode } from './parse.ts';

export interface SocketCounters {
  reads: number;
  malformedLines: number;
  readErrors: number;
  fdWalks: number;
  fullFdWalks: number;
}

const FULL_WALK_EVERY_MS = 10_000;
const MAX_CACHED_OWNERS = 65_536;
const TABLES = ['net/tcp', 'net/tcp6'] as const;

/** The kernel's socket tables as read (or the error reading one gave). */
export type SocketTables = Record<(typeof TABLES)[number], string | Error>;

export class SocketReader {
  readonly counters: SocketCounters = { reads: 0, malformedLines: 0, readErrors: 0, fdWalks: 0, fullFdWalks: 0 };
  readonly #procRoot: string;
  /** Socket tables this kernel does not have (no IPv6: no net/tcp6). */
  readonly missing = new Set<string>();
  readonly #owners = new Map<number, number>();
  #lastFullWalkMs = Number.NEGATIVE_INFINITY;

  constructor(procRoot = '/proc') {
    this.#procRoot = procRoot;
  }

  /**
   * Every TCP socket of the host, IPv4 and IPv6: from the tables given (read ahead by readTables), or
   * read now. The kernel can take milliseconds to write each table (7 ms here for two sockets).
   */
  read(tables?: SocketTables): SocketEntry[] {
    this.counters.reads++;
    const sockets: SocketEntry[] = [];
    for (const file of TABLES) {
      let text: string;
      try {
        const given = tables?.[file];
        if (given instanceof Error) throw given;
        text = given ?? readFileSync(join(this.#procRoot, file), 'utf8');
      } catch (error) {
        // No IPv6 in this kernel, or no /proc/net at all: the sensor's health says which.
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') this.missing.add(join(this.#procRoot, file));
        else this.counters.readErrors++;
        continue;
      }
      const parsed = parseProcNetTcp(text);
      this.counters.malformedLines += parsed.malformed;
      sockets.push(...parsed.sockets);
    }
    return sockets;
  }

  /** Reads the socket tables off the event loop (libuv's thread pool), for read() to parse. */
  async readTables(): Promise<SocketTables> {
    const texts = await Promise.all(TABLES.map((file) => readFile(join(this.#procRoot, file), 'utf8').catch((error: Error) => error)));
    return { 'net/tcp': texts[0]!, 'net/tcp6': texts[1]! };
  }

  /**
   * The owning pid of each wanted socket inode that can be found. `likelyPids` are walked first; the
   * remaining inodes trigger a walk of every process, at most once every few seconds.
   */
  owners(wanted: ReadonlySet<number>, likelyPids: Iterable<number>): Map<number, number> {
    const found = new Map<number, number>();
    const missing = new Set<number>();
    for (const inode of wanted) {
      const pid = this.#owners.get(inode);
      if (pid !== undefined) found.set(inode, pid);
      else missing.add(inode);
    }
    if (missing.size === 0) return found;
    for (const pid of likelyPids) {
      this.#walkFor(pid, missing, found);
      if (missing.size === 0) return found;
    }
    const now = Date.now();
    if (now - this.#lastFullWalkMs < FULL_WALK_EVERY_MS) return found;
    this.#lastFullWalkMs = now;
    this.counters.fullFdWalks++;
    let names: string[];
    try {
      names = readdirSync(this.#procRoot);
    } catch {
      this.counters.readErrors++;
      return found;
    }
    for (const name of names) {
      if (missing.size === 0) break;
      const first = name.charCodeAt(0);
      if (first >= 48 && first <= 57) this.#walkFor(Number(name), missing, found);
    }
    return found;
  }

  /** The socket inodes process `pid` holds open (empty when it exited or cannot be read). */
  socketsOf(pid: number): Set<number> {
    const inodes = new Set<number>();
    this.#walk(pid, (inode) => inodes.add(inode));
    return inodes;
  }

  /** Forgets owners of sockets that no longer exist, so the cache stays bounded. */
  retain(live: ReadonlySet<number>): void {
    for (const inode of this.#owners.keys()) if (!live.has(inode)) this.#owners.delete(inode);
  }

  #walkFor(pid: number, missing: Set<number>, found: Map<number, number>): void {
    this.#walk(pid, (inode) => {
      if (missing.delete(inode)) found.set(inode, pid);
    });
  }

  /** Calls `onSocket` for each socket fd of `pid`, and remembers it as that socket's owner. */
  #walk(pid: number, onSocket: (inode: number) => void): void {
    this.counters.fdWalks++;
    const dir = join(this.#procRoot, String(pid), 'fd');
    let fds: string[];
    try {
      fds = readdirSync(dir);
    } catch {
      // Exited, or not ours to read without root: the caller sees the socket as unowned.
      return;
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(join(dir, fd));
      } catch {
        continue;
      }
      const inode = socketInode(target);
      if (inode === undefined) continue;
      if (this.#owners.size < MAX_CACHED_OWNERS && !this.#owners.has(inode)) this.#owners.set(inode, pid);
      onSocket(inode);
    }
  }
}
