// Pure decoding of what the process events connector addon (native/proc-connector) hands over: a
// batch of packed records, and the kernel's exit status. Total: a malformed batch ends in a count.
import type { ExecDetails } from './table.ts';

/** What happened, as the addon's `kind` byte says. */
export type ConnectorRecordKind = 'fork' | 'exec' | 'uid' | 'exit' | 'overflow' | 'dropped' | 'error' | 'relisten' | 'sid' | 'cut';

const KINDS: Record<number, ConnectorRecordKind> = {
  1: 'fork', 2: 'exec', 3: 'uid', 4: 'exit', 5: 'overflow', 6: 'dropped', 7: 'error', 8: 'relisten', 9: 'sid', 10: 'cut',
};

/** Record flags (byte 5). */
export const FLAG_CMDLINE_TRUNCATED = 1;
/** The process had exited before its details could be read (an empty cmdline and no exe). */
export const FLAG_GONE = 2;
export const FLAG_ENVIRON_TRUNCATED = 4;
/** `a`/`b` of an exec hold the owner (effective uid and gid) of /proc/PID. */
export const FLAG_OWNER = 8;

export const HEADER_BYTES = 64;
/** The blobs of an exec record, in order. */
export const BLOBS = ['cmdline', 'exe', 'stat', 'cwd', 'sessionid', 'environ'] as const;

/** `bootMs`: when it happened on the boot clock, which /proc/PID/stat counts start times in (ticks of 10 ms). */
export interface ForkRecord { kind: 'fork'; timeMs: number; bootMs: number; pid: number; ppid: number; startTicks: number }
export interface ExecRecord extends ExecDetails {
  kind: 'exec';
  timeMs: number;
  bootMs: number;
  pid: number;
  gone: boolean;
}
export interface UidRecord { kind: 'uid'; timeMs: number; bootMs: number; pid: number; realUid: number; effectiveUid: number }
export interface ExitRecord { kind: 'exit'; timeMs: number; bootMs: number; pid: number; ppid: number; status: number }
/** The process called setsid(): a new session, without a controlling terminal. */
export interface SidRecord { kind: 'sid'; timeMs: number; bootMs: number; pid: number }
/**
 * ENOBUFS (overflow: the kernel dropped messages), our own queue full (dropped), a recv error (`count`
 * is its errno; `final` when the reader stopped for good), or the kernel found to have stopped
 * announcing events (it counts listeners; a new socket listened again). `bootMs` is when it was made.
 */
export interface LossRecord { kind: 'overflow' | 'dropped' | 'error' | 'relisten'; timeMs: number; bootMs: number; count: number; final?: true }
/**
 * The batch is complete up to `bootMs`: the exec socket was read up to then. Records after it (read
 * from the bulk socket a moment later) may belong with execs still to come, in the next batch.
 */
export interface CutRecord { kind: 'cut'; timeMs: number; bootMs: number }
export type ConnectorRecord = ForkRecord | ExecRecord | UidRecord | ExitRecord | SidRecord | CutRecord | LossRecord;

export interface DecodedBatch {
  records: ConnectorRecord[];
  /** Bytes that did not form a record (a bad size or kind): decoding stopped there. */
  malformed: number;
}

/**
 * Decodes one batch. Records come in event time order per socket; the batch is returned sorted by
 * the boot clock (stably), so a fork read from the bulk socket precedes the exec read from the other.
 * The boot clock, not the wall clock: a step of the wall clock between the reads of the two sockets
 * must not reorder them.
 */
export function decodeBatch(data: Buffer): DecodedBatch {
  const records: ConnectorRecord[] = [];
  let at = 0;
  let malformed = 0;
  while (at < data.length) {
    if (data.length - at < HEADER_BYTES) {
      malformed = data.length - at;
      break;
    }
    const size = data.readUInt32LE(at);
    const kind = KINDS[data[at + 4]!];
    if (size < HEADER_BYTES || size % 8 !== 0 || at + size > data.length || !kind) {
      malformed = data.length - at;
      break;
    }
    const record = decodeRecord(data, at, size, kind);
    if (!record) {
      malformed = data.length - at;
      break;
    }
    records.push(record);
    at += size;
  }
  let sorted = true;
  for (let i = 1; i < records.length; i++) {
    if (records[i]!.bootMs < records[i - 1]!.bootMs) {
      sorted = false;
      break;
    }
  }
  if (!sorted) records.sort((a, b) => a.bootMs - b.bootMs);
  return { records, malformed };
}

function decodeRecord(data: Buffer, at: number, size: number, kind: ConnectorRecordKind): ConnectorRecord | undefined {
  const flags = data[at + 5]!;
  const present = data.readUInt16LE(at + 6);
  const timeMs = data.readDoubleLE(at + 8);
  const pid = data.readInt32LE(at + 16);
  const parent = data.readInt32LE(at + 20);
  const a = data.readUInt32LE(at + 24);
  const b = data.readUInt32LE(at + 28);
  const bootMs = data.readDoubleLE(at + 56);
  switch (kind) {
    case 'fork':
      // As the kernel counts a start in /proc/PID/stat: whole ticks of 10 ms since boot.
      return { kind, timeMs, bootMs, pid, ppid: parent, startTicks: Math.floor(bootMs / 10) };
    case 'uid':
      return { kind, timeMs, bootMs, pid, realUid: a, effectiveUid: b };
    case 'exit':
      return { kind, timeMs, bootMs, pid, ppid: parent, status: a };
    case 'sid':
      return { kind, timeMs, bootMs, pid };
    case 'cut':
      return { kind, timeMs, bootMs };
    case 'error':
      return b === 1 ? { kind, timeMs, bootMs, count: a, final: true } : { kind, timeMs, bootMs, count: a };
    case 'overflow':
    case 'dropped':
    case 'relisten':
      return { kind, timeMs, bootMs, count: a };
    case 'exec': {
      const record: ExecRecord = { kind, timeMs, bootMs, pid, gone: (flags & FLAG_GONE) !== 0, cmdlineTruncated: (flags & FLAG_CMDLINE_TRUNCATED) !== 0 };
      if (flags & FLAG_OWNER) record.ownerUid = a;
      let offset = at + HEADER_BYTES;
      const end = at + size;
      for (const [i, name] of BLOBS.entries()) {
        const length = data.readUInt32LE(at + 32 + 4 * i);
        if (offset + length > end) return undefined;
        if (present & (1 << i)) {
          switch (name) {
            case 'cmdline': record.cmdline = data.subarray(offset, offset + length); break;
            case 'environ': record.environ = data.subarray(offset, offset + length); break;
            case 'exe': record.exe = data.toString('utf8', offset, offset + length); break;
            case 'stat': record.stat = data.toString('utf8', offset, offset + length); break;
            case 'cwd': record.cwd = data.toString('utf8', offset, offset + length); break;
            case 'sessionid': record.sessionId = data.toString('utf8', offset, offset + length); break;
          }
        }
        offset += length;
      }
      return record;
    }
  }
}

export interface ExitStatus {
  /** The exit code, or 128 + the signal for a process killed by one (as a shell's `$?` shows it). */
  exitCode: number;
  /** The signal that ended it (`SIGKILL`), if one did. */
  signal?: string;
  coreDumped?: boolean;
}

const SIGNALS: Record<number, string> = {
  1: 'SIGHUP', 2: 'SIGINT', 3: 'SIGQUIT', 4: 'SIGILL', 5: 'SIGTRAP', 6: 'SIGABRT', 7: 'SIGBUS', 8: 'SIGFPE',
  9: 'SIGKILL', 10: 'SIGUSR1', 11: 'SIGSEGV', 12: 'SIGUSR2', 13: 'SIGPIPE', 14: 'SIGALRM', 15: 'SIGTERM',
  16: 'SIGSTKFLT', 17: 'SIGCHLD', 18: 'SIGCONT', 19: 'SIGSTOP', 20: 'SIGTSTP', 21: 'SIGTTIN', 22: 'SIGTTOU',
  23: 'SIGURG', 24: 'SIGXCPU', 25: 'SIGXFSZ', 26: 'SIGVTALRM', 27: 'SIGPROF', 28: 'SIGWINCH', 29: 'SIGIO',
  30: 'SIGPWR', 31: 'SIGSYS',
};

/** The kernel's exit status (wait(2) format: code << 8 | core flag | signal). */
export function decodeExitStatus(status: number): ExitStatus {
  const signal = status & 0x7f;
  if (signal === 0) return { exitCode: (status >>> 8) & 0xff };
  const out: ExitStatus = { exitCode: 128 + signal, signal: SIGNALS[signal] ?? `SIG${signal}` };
  if (status & 0x80) out.coreDumped = true;
  return out;
}
