// The live process table read from /proc, kept incrementally: a scan lists pids and reads details
// only for pids it has not seen, so its cost grows with new processes, not with the table's size.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { ProcessInfo } from '../types.ts';
import {
  decodeTty, parseAuditSessionId, parseBootTime, parseCmdline, parseEnviron, parseLastPid, parseStat,
  parseStatusUids, startTimeMs,
} from './parse.ts';
import { UserNames } from './users.ts';

/** Environment variables that tie a process to a remote session; nothing else is kept. */
export const ATTRIBUTION_ENV_KEYS: ReadonlySet<string> = new Set([
  'SSH_CONNECTION', 'SSH_CLIENT', 'SSH_TTY', 'DISPLAY',
]);

export interface ProcEntry extends ProcessInfo {
  startTicks: number;
  kernelThread: boolean;
  /** When a scan first read this process (ms since the epoch), and which scan it was. */
  readAtMs: number;
  firstGeneration: number;
  /** The scan that last listed this pid. */
  generation: number;
  /** Set by attribution: the remote session this process belongs to, or null when none. */
  sessionId?: string | null;
  /** The real uid (`uid` is the effective one), when known: a privilege change compares both. */
  realUid?: number;
  /**
   * Connector source: a fork not (yet) followed by an exec. It holds its parent's program; its
   * process_creation waits a scan interval for an exec, as a scan would not have seen it sooner.
   */
  forkOnly?: boolean;
  /** Connector source: the exit arrived; the entry leaves the table once its batch is emitted. */
  exitedAtMs?: number;
  /** Connector source: the process had exited before its details could be read at its exec. */
  exitedBeforeRead?: boolean;
  /** Connector source: when the exec that made this entry happened, on the boot clock (ms). */
  execBootMs?: number;
  /** Its ProcessGuid, hashed once (for this host and start time). */
  guid?: { hostId: string; startTimeMs: number; value: string };
}

/** What the connector read of a process the moment its exec arrived; absent what could not be read. */
export interface ExecDetails {
  cmdline?: Buffer;
  cmdlineTruncated: boolean;
  exe?: string;
  stat?: string;
  cwd?: string;
  sessionId?: string;
  environ?: Buffer;
  /** Owner of /proc/PID: the effective uid. */
  ownerUid?: number;
}

export interface ScanResult {
  created: ProcEntry[];
  exited: ProcEntry[];
  /**
   * Young processes that ran execve() after they were first read (a fork is often seen before its
   * exec): their entry now holds the new program.
   */
  execed: ProcEntry[];
  /** Young processes that rewrote their own title without an exec (sshd does, per session). */
  retitled: ProcEntry[];
}

/** How long after it is first read a process is checked again, every scan, for an exec or a new title. */
export const YOUNG_WINDOW_MS = 300;
/** The fewest scans a young process is re-checked in, however slowly the scans come. */
export const YOUNG_SCANS = 3;
/** Older processes re-checked per scan, in rotation: the whole table every (size / this) scans. */
export const ROTATING_RECHECKS = 4;

export interface ProcessTableOptions {
  procRoot?: string;
  passwdPath?: string;
  maxCommandLineChars?: number;
  /** How `exe` and `cwd` links are read; fixture trees store them as files holding the target. */
  readLink?: (path: string) => string;
}

/** Counters the sensor reports in its health; every skipped pid lands in one of them. */
export interface ProcessCounters {
  scans: number;
  created: number;
  exited: number;
  /** A pid that vanished between the listing and reading its details (exited mid-read). */
  vanished: number;
  /** A /proc file the agent was not allowed to read (not root, or a hardened kernel). */
  permissionDenied: number;
  /** A /proc file whose content did not parse. */
  malformed: number;
  /** A pid seen again with another start time: the old process exited, a new one took its pid. */
  pidReused: number;
  /** A process that exec'd after it was first read, reported again with its new program. */
  execAfterRead: number;
}

/** Start time in clock ticks (as /proc/PID/stat counts) from a kernel boot-clock time in ns. */
export function ticksOfBootNs(bootNs: number): number {
  return Math.floor(bootNs / 10_000_000);
}

const NOT_READ = Symbol('not read');
type Read<T> = T | typeof NOT_READ;

export class ProcessTable {
  readonly procRoot: string;
  readonly counters: ProcessCounters = {
    scans: 0, created: 0, exited: 0, vanished: 0, permissionDenied: 0, malformed: 0, pidReused: 0, execAfterRead: 0,
  };
  readonly #entries = new Map<number, ProcEntry>();
  /** Processes first read less than YOUNG_WINDOW_MS ago, oldest first. */
  #young: ProcEntry[] = [];
  /** The older processes, re-checked ROTATING_RECHECKS per scan. */
  #rotation: ProcEntry[] = [];
  #rotationAt = 0;
  readonly #users: UserNames;
  readonly #maxCommandLineChars: number;
  readonly #readLinkAt: (path: string) => string;
  #generation = 0;
  #bootTimeSec = 0;
  #lastPid: number | undefined;

  constructor({
    procRoot = '/proc', passwdPath = '/etc/passwd', maxCommandLineChars = 32_768, readLink = readlinkSync,
  }: ProcessTableOptions = {}) {
    this.procRoot = procRoot;
    this.#readLinkAt = readLink;
    this.#users = new UserNames(passwdPath);
    this.#maxCommandLineChars = maxCommandLineChars;
    const boot = parseBootTime(this.#readText(join(procRoot, 'stat')) ?? '');
    if (boot === undefined) throw new Error(`cannot read the boot time from ${join(procRoot, 'stat')}: expected a 'btime' line`);
    this.#bootTimeSec = boot;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The start time in ms since the epoch of a process started `startTicks` after boot. */
  startTimeMsOf(startTicks: number): number {
    return startTimeMs(this.#bootTimeSec, startTicks);
  }

  /** The user name of a uid, if the passwd file has it. */
  userName(uid: number): string | undefined {
    return this.#users.name(uid);
  }

  /** Puts an entry the connector built; it replaces any entry of the same pid. */
  put(entry: ProcEntry): void {
    entry.generation = this.#generation;
    entry.firstGeneration = this.#generation;
    this.#entries.set(entry.pid, entry);
    if (!entry.kernelThread) this.#young.push(entry);
  }

  /**
   * Between scans (the connector source): reads command lines again as a scan would, the young
   * processes' and a rotating slice of the older ones', so a program that retitles itself (sshd's
   * processes, a process faking sshd's title) is seen. Counts as a scan for how long a process stays young.
   */
  recheck(nowMs: number = Date.now()): Pick<ScanResult, 'execed' | 'retitled'> {
    this.#generation++;
    return this.#recheck(nowMs);
  }


  /** Removes `entry` if it is still the table's entry for its pid. */
  remove(entry: ProcEntry): void {
    if (this.#entries.get(entry.pid) === entry) this.#entries.delete(entry.pid);
  }

  /** A forked child as the connector first knows it: its parent's program, its own pid and start. */
  fromFork(pid: number, ppid: number, startTicks: number, nowMs: number): ProcEntry {
    const parent = this.#entries.get(ppid);
    const entry: ProcEntry = {
      pid, ppid, startTicks, startTimeMs: this.startTimeMsOf(startTicks),
      name: parent?.name ?? '', image: parent?.image ?? '', commandLine: parent?.commandLine ?? '',
      kernelThread: parent?.kernelThread ?? false, readAtMs: nowMs,
      firstGeneration: this.#generation, generation: this.#generation, forkOnly: true,
    };
    if (!parent) return entry;
    // A fork inherits all of this; an exec or a uid change that follows is reported and applied.
    for (const key of ['commandLineTruncated', 'cwd', 'uid', 'realUid', 'user', 'tty', 'auditSessionId', 'env'] as const) {
      if (parent[key] !== undefined) (entry as unknown as Record<string, unknown>)[key] = parent[key];
    }
    return entry;
  }

  /**
   * A process as the connector read it at its exec. What could not be read (the process exited
   * first) comes from what the table knew of it (its fork), or is left empty.
   */
  fromExec(pid: number, details: ExecDetails, known: ProcEntry | undefined, nowMs: number): ProcEntry {
    // Read at the exec after a setsid() only (see the addon's on_exec); a process the table does not
    // know (its fork was lost) is read now, if it still runs.
    const statText = details.stat ?? (known ? undefined : this.#readText(join(this.procRoot, String(pid), 'stat')));
    const stat = statText === undefined ? undefined : parseStat(statText);
    const startTicks = stat?.startTicks ?? known?.startTicks ?? 0;
    const entry: ProcEntry = {
      pid,
      ppid: stat?.ppid ?? known?.ppid ?? 0,
      startTicks,
      startTimeMs: this.startTimeMsOf(startTicks),
      // The kernel names an exec'd process after the file it ran (15 bytes at most).
      name: stat?.comm ?? (details.exe === undefined ? '' : basename(details.exe).slice(0, 15)),
      image: '',
      commandLine: '',
      kernelThread: false,
      readAtMs: nowMs,
      firstGeneration: this.#generation,
      generation: this.#generation,
    };
    const tty = stat ? decodeTty(stat.ttyNr) : known?.tty;
    if (tty) entry.tty = tty;
    const uid = details.ownerUid ?? known?.uid;
    if (uid !== undefined) {
      entry.uid = uid;
      const user = this.#users.name(uid);
      if (user !== undefined) entry.user = user;
    }
    // exec never changes the real uid: it is the one the process had, or its parent's.
    const realUid = known?.realUid ?? this.#entries.get(entry.ppid)?.realUid;
    if (realUid !== undefined) entry.realUid = realUid;
    if (details.cmdline !== undefined) {
      const parsed = parseCmdline(details.cmdline, this.#maxCommandLineChars);
      entry.commandLine = parsed.commandLine;
      if (parsed.truncated || details.cmdlineTruncated) entry.commandLineTruncated = true;
    }
    entry.image = details.exe ?? (entry.commandLine ? imageFallback(entry.commandLine, entry.name) : '');
    const cwd = details.cwd ?? known?.cwd;
    if (cwd !== undefined) entry.cwd = cwd;
    const auditSessionId = details.sessionId === undefined ? known?.auditSessionId : parseAuditSessionId(details.sessionId);
    if (auditSessionId !== undefined) entry.auditSessionId = auditSessionId;
    if (details.environ !== undefined) {
      const env = parseEnviron(details.environ, ATTRIBUTION_ENV_KEYS);
      if (Object.keys(env).length > 0) entry.env = env;
    } else if (known?.env) {
      entry.env = known.env;
    }
    return entry;
  }

  get(pid: number): ProcEntry | undefined {
    return this.#entries.get(pid);
  }

  entries(): IterableIterator<ProcEntry> {
    return this.#entries.values();
  }

  /** Ancestors of `pid`, nearest first, as far as the table knows them. */
  *ancestors(entry: ProcEntry): Generator<ProcEntry> {
    let current = entry;
    for (let depth = 0; depth < 4096 && current.ppid > 0; depth++) {
      const parent = this.#entries.get(current.ppid);
      if (!parent || parent.startTimeMs > current.startTimeMs) return;
      yield parent;
      current = parent;
    }
  }

  /**
   * One pass over /proc. New pids are read in full; known pids cost a Map lookup. A known pid is
   * re-read only if the kernel's pid cursor moved past it since the last scan, the only way it
   * can have been handed to a new process.
   */
  scan(): ScanResult {
    const generation = ++this.#generation;
    const nowMs = Date.now();
    this.counters.scans++;
    const lastPid = parseLastPid(this.#readText(join(this.procRoot, 'loadavg')) ?? '');
    const reusable = this.#reusableRange(lastPid);
    const created: ProcEntry[] = [];
    const exited: ProcEntry[] = [];
    for (const name of readdirSync(this.procRoot)) {
      const first = name.charCodeAt(0);
      if (first < 48 || first > 57) continue;
      const pid = Number(name);
      const known = this.#entries.get(pid);
      if (known) {
        if (reusable && reusable(pid) && this.#wasReused(known)) {
          this.counters.pidReused++;
          exited.push(known);
          this.#entries.delete(pid);
        } else {
          known.generation = generation;
          continue;
        }
      }
      const entry = this.#read(pid, generation, nowMs);
      if (entry) created.push(entry);
    }
    for (const entry of this.#entries.values()) {
      if (entry.generation !== generation) exited.push(entry);
    }
    for (const entry of exited) {
      if (this.#entries.get(entry.pid) === entry) this.#entries.delete(entry.pid);
    }
    const { execed, retitled } = this.#recheck(nowMs);
    // Insert after the pass so that parents read in this scan are found by their children.
    for (const entry of created) this.#entries.set(entry.pid, entry);
    created.sort((a, b) => a.startTicks - b.startTicks || a.pid - b.pid);
    for (const entry of created) if (!entry.kernelThread) this.#young.push(entry);
    this.counters.created += created.length;
    this.counters.exited += exited.length;
    this.#lastPid = lastPid;
    return { created, exited, execed, retitled };
  }

  /**
   * Reads command lines again: every young process's, and a rotating slice of the older ones (an
   * exec long after the fork, a wrapper that execs its payload). A changed one is read in full: a new
   * executable or comm means an exec; otherwise the program retitled itself.
   */
  #recheck(nowMs: number): { execed: ProcEntry[]; retitled: ProcEntry[] } {
    const execed: ProcEntry[] = [];
    const retitled: ProcEntry[] = [];
    let keepFrom = 0;
    // Young for YOUNG_WINDOW_MS and for at least YOUNG_SCANS scans: on a loaded host scans come late.
    while (keepFrom < this.#young.length && nowMs - this.#young[keepFrom]!.readAtMs > YOUNG_WINDOW_MS
      && this.#generation - this.#young[keepFrom]!.firstGeneration >= YOUNG_SCANS) keepFrom++;
    this.#young = this.#young.slice(keepFrom);
    if (this.#rotationAt >= this.#rotation.length) {
      this.#rotation = [...this.#entries.values()];
      this.#rotationAt = 0;
    }
    const older = this.#rotation.slice(this.#rotationAt, this.#rotationAt + ROTATING_RECHECKS);
    this.#rotationAt += ROTATING_RECHECKS;
    for (const entry of [...this.#young, ...older]) {
      if (this.#entries.get(entry.pid) !== entry || entry.kernelThread) continue;
      const cmdline = this.#readRaw(join(this.procRoot, String(entry.pid), 'cmdline'));
      if (cmdline === NOT_READ || parseCmdline(cmdline, this.#maxCommandLineChars).commandLine === entry.commandLine) continue;
      const fresh = this.#read(entry.pid, entry.generation, entry.readAtMs);
      if (!fresh || fresh.startTicks !== entry.startTicks) continue;
      const exec = fresh.image !== entry.image || fresh.name !== entry.name;
      const { sessionId } = entry;
      Object.assign(entry, fresh);
      if (sessionId !== undefined) entry.sessionId = sessionId;
      if (exec) {
        this.counters.execAfterRead++;
        execed.push(entry);
      } else {
        retitled.push(entry);
      }
    }
    return { execed, retitled };
  }

  /** Reads a process's command line again (a title it may have changed since); true if it changed. */
  refreshTitle(entry: ProcEntry): boolean {
    const cmdline = this.#readRaw(join(this.procRoot, String(entry.pid), 'cmdline'));
    if (cmdline === NOT_READ) return false;
    const { commandLine } = parseCmdline(cmdline, this.#maxCommandLineChars);
    if (commandLine === entry.commandLine) return false;
    entry.commandLine = commandLine;
    return true;
  }

  /** Reads a process's audit session again: a login sets it without an exec (pam_loginuid, in sshd). */
  refreshAuditSession(entry: ProcEntry): void {
    const auditSessionId = this.#auditSessionOf(join(this.procRoot, String(entry.pid)));
    if (auditSessionId !== undefined) entry.auditSessionId = auditSessionId;
  }

  /** Whether the process still runs the executable the entry holds (no exec since). */
  runs(entry: ProcEntry): boolean {
    const exe = this.#readLink(join(this.procRoot, String(entry.pid), 'exe'));
    return exe !== NOT_READ && exe === entry.image;
  }

  /** A process's real and effective users as they are now. */
  readUids(entry: ProcEntry): { real: number; effective: number } | undefined {
    return this.#uidsOf(join(this.procRoot, String(entry.pid)));
  }

  /** The real and effective users in /proc/PID/status (`dir`), if it can be read. */
  #uidsOf(dir: string): { real: number; effective: number } | undefined {
    const text = this.#readText(join(dir, 'status'));
    return text === undefined ? undefined : parseStatusUids(text);
  }

  /** The audit session in /proc/PID/sessionid (`dir`), if it can be read and is set. */
  #auditSessionOf(dir: string): number | undefined {
    const text = this.#readText(join(dir, 'sessionid'));
    return text === undefined ? undefined : parseAuditSessionId(text);
  }

  /** Whether a process has exited but not been reaped yet: gone for every purpose but its pid. */
  isZombie(entry: ProcEntry): boolean {
    const stat = parseStat(this.#readText(join(this.procRoot, String(entry.pid), 'stat')) ?? '');
    return stat === undefined || stat.startTicks !== entry.startTicks || stat.state === 'Z';
  }

  /** The pids the kernel may have handed out since the last scan: the cursor's path, cyclically. */
  #reusableRange(lastPid: number | undefined): ((pid: number) => boolean) | undefined {
    const before = this.#lastPid;
    if (before === undefined || lastPid === undefined) return undefined;
    if (lastPid === before) return undefined;
    if (lastPid > before) return (pid) => pid > before && pid <= lastPid;
    return (pid) => pid > before || pid <= lastPid;
  }

  #wasReused(known: ProcEntry): boolean {
    const stat = parseStat(this.#readText(join(this.procRoot, String(known.pid), 'stat')) ?? '');
    return stat !== undefined && stat.startTicks !== known.startTicks;
  }

  /** Reads one process; undefined if it exited mid-read (counted) or its stat did not parse. */
  #read(pid: number, generation: number, nowMs: number, retry = true): ProcEntry | undefined {
    const dir = join(this.procRoot, String(pid));
    const statText = this.#readText(join(dir, 'stat'));
    if (statText === undefined) {
      this.counters.vanished++;
      return undefined;
    }
    const stat = parseStat(statText);
    if (!stat) {
      this.counters.malformed++;
      return undefined;
    }
    const entry: ProcEntry = {
      pid,
      ppid: stat.ppid,
      startTicks: stat.startTicks,
      startTimeMs: startTimeMs(this.#bootTimeSec, stat.startTicks),
      name: stat.comm,
      image: '',
      commandLine: '',
      kernelThread: stat.kernelThread,
      readAtMs: nowMs,
      firstGeneration: generation,
      generation,
    };
    if (stat.kernelThread) return entry;
    const tty = decodeTty(stat.ttyNr);
    if (tty) entry.tty = tty;
    const uids = this.#uidsOf(dir);
    if (uids !== undefined) {
      entry.uid = uids.effective;
      entry.realUid = uids.real;
      const user = this.#users.name(uids.effective);
      if (user !== undefined) entry.user = user;
    }
    const cmdline = this.#readRaw(join(dir, 'cmdline'));
    if (cmdline !== NOT_READ) {
      const parsed = parseCmdline(cmdline, this.#maxCommandLineChars);
      entry.commandLine = parsed.commandLine;
      if (parsed.truncated) entry.commandLineTruncated = true;
    }
    const exe = this.#readLink(join(dir, 'exe'));
    if (retry && exe !== NOT_READ && !basename(exe).startsWith(stat.comm)) {
      // comm not matching the executable is normal for symlinks (sh → dash), but it is also what an
      // exec between reading stat and reading exe looks like: then read the new program in full.
      const again = parseStat(this.#readText(join(dir, 'stat')) ?? '');
      if (again && again.startTicks === stat.startTicks && again.comm !== stat.comm) return this.#read(pid, generation, nowMs, false);
    }
    entry.image = exe !== NOT_READ ? exe : imageFallback(entry.commandLine, stat.comm);
    const cwd = this.#readLink(join(dir, 'cwd'));
    if (cwd !== NOT_READ) entry.cwd = cwd;
    const auditSessionId = this.#auditSessionOf(dir);
    if (auditSessionId !== undefined) entry.auditSessionId = auditSessionId;
    const environ = this.#readRaw(join(dir, 'environ'));
    if (environ !== NOT_READ) {
      const env = parseEnviron(environ, ATTRIBUTION_ENV_KEYS);
      if (Object.keys(env).length > 0) entry.env = env;
    }
    return entry;
  }

  #readText(path: string): string | undefined {
    const raw = this.#readRaw(path);
    return raw === NOT_READ ? undefined : raw.toString('utf8');
  }

  #readRaw(path: string): Read<Buffer> {
    try {
      return readFileSync(path);
    } catch (error) {
      this.#countReadError(error);
      return NOT_READ;
    }
  }

  #readLink(path: string): Read<string> {
    try {
      return this.#readLinkAt(path);
    } catch (error) {
      this.#countReadError(error);
      return NOT_READ;
    }
  }

  #countReadError(error: unknown): void {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') this.counters.permissionDenied++;
    // ENOENT/ESRCH: the process exited mid-read; its stat read (or the next scan) counts it.
  }
}

/** Without permission to read /proc/PID/exe: argv[0] when it is a path, else the comm name. */
function imageFallback(commandLine: string, comm: string): string {
  const argv0 = commandLine.split(' ', 1)[0] ?? '';
  return argv0.startsWith('/') ? argv0 : comm;
}
