// Pure parsers for the Linux /proc files the process sensor reads. Each is total: bad input gives
// `undefined` (or an empty result) that the caller counts, never a throw.

/** Linux reports process times in USER_HZ, which is 100 on every architecture we ship for. */
export const USER_HZ = 100;

/** PF_KTHREAD in the `flags` field of /proc/PID/stat: the task is a kernel thread. */
const PF_KTHREAD = 0x0020_0000;

export interface ProcStat {
  pid: number;
  /** The `comm` name, up to 15 bytes; may contain spaces and parentheses. */
  comm: string;
  state: string;
  ppid: number;
  sessionId: number;
  ttyNr: number;
  kernelThread: boolean;
  /** Start time in clock ticks since boot. */
  startTicks: number;
}

/** Parses /proc/PID/stat. `comm` can hold any byte, so fields are split after its last `)`. */
export function parseStat(text: string): ProcStat | undefined {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 1 || close < open) return undefined;
  const pid = toInt(text.slice(0, open).trim());
  // Fields after comm, numbered as in proc(5) from field 3 (state).
  const rest = text.slice(close + 2).split(' ');
  if (pid === undefined || rest.length < 20) return undefined;
  const ppid = toInt(rest[1]);
  const sessionId = toInt(rest[3]);
  const ttyNr = toInt(rest[4]);
  const flags = toInt(rest[6]);
  const startTicks = toInt(rest[19]);
  if (ppid === undefined || sessionId === undefined || ttyNr === undefined || flags === undefined
    || startTicks === undefined) return undefined;
  return {
    pid,
    comm: text.slice(open + 1, close),
    state: rest[0] ?? '?',
    ppid,
    sessionId,
    ttyNr,
    kernelThread: (flags & PF_KTHREAD) !== 0,
    startTicks,
  };
}

/**
 * The effective uid from /proc/PID/status (`Uid:\treal\teffective\tsaved\tfs`): whose rights the
 * process acts with, so a setuid-root program run by a vendor shows as root, as a Windows token would.
 */
export function parseStatusUid(text: string): number | undefined {
  return parseStatusUids(text)?.effective;
}

/** The real and effective uids of /proc/PID/status; they differ in a setuid program (sudo, su). */
export function parseStatusUids(text: string): { real: number; effective: number } | undefined {
  const at = text.indexOf('\nUid:');
  if (at < 0) return undefined;
  const end = text.indexOf('\n', at + 1);
  const fields = text.slice(at + 5, end < 0 ? undefined : end).trim().split(/\s+/);
  const real = toInt(fields[0]);
  const effective = toInt(fields[1]);
  return real === undefined || effective === undefined ? undefined : { real, effective };
}

export interface CommandLine {
  commandLine: string;
  truncated: boolean;
}

/**
 * Joins the NUL-separated argv of /proc/PID/cmdline with spaces. Programs that rewrite their title
 * (sshd, postgres) pad it with spaces or NULs, so trailing padding is dropped.
 */
export function parseCmdline(raw: Buffer | string, maxChars: number): CommandLine {
  let text = typeof raw === 'string' ? raw : raw.toString('utf8');
  text = text.replace(/[\0 ]+$/, '').replaceAll('\0', ' ');
  if (text.length <= maxChars) return { commandLine: text, truncated: false };
  return { commandLine: text.slice(0, maxChars), truncated: true };
}

/** Picks the wanted variables out of /proc/PID/environ (NUL-separated `KEY=value`). */
export function parseEnviron(raw: Buffer | string, wanted: ReadonlySet<string>): Record<string, string> {
  const text = typeof raw === 'string' ? raw : raw.toString('utf8');
  const picked: Record<string, string> = {};
  for (const entry of text.split('\0')) {
    const eq = entry.indexOf('=');
    if (eq <= 0) continue;
    const key = entry.slice(0, eq);
    if (wanted.has(key)) picked[key] = entry.slice(eq + 1);
  }
  return picked;
}

/** /proc/PID/sessionid: the audit session PAM set, or undefined when unset (4294967295). */
export function parseAuditSessionId(text: string): number | undefined {
  const id = toInt(text.trim());
  return id === undefined || id === 0xffff_ffff ? undefined : id;
}

/**
 * Decodes `tty_nr` of /proc/PID/stat into the device name under /dev, for the terminals that
 * matter here: pseudo-terminals (majors 136–143) and virtual consoles / serial lines (major 4).
 */
export function decodeTty(ttyNr: number): string | undefined {
  if (ttyNr <= 0) return undefined;
  const major = (ttyNr >>> 8) & 0xfff;
  const minor = (ttyNr & 0xff) | ((ttyNr >>> 12) & 0xfff00);
  if (major >= 136 && major <= 143) return `pts/${(major - 136) * 256 + minor}`;
  if (major === 4) return minor < 64 ? `tty${minor}` : `ttyS${minor - 64}`;
  return undefined;
}

/** `btime` (boot time, seconds since the epoch) from /proc/stat. */
export function parseBootTime(text: string): number | undefined {
  const match = /^btime (\d+)$/m.exec(text);
  return match ? Number(match[1]) : undefined;
}

/** Start time in ms since the epoch from the boot time and a start time in ticks. */
export function startTimeMs(bootTimeSec: number, startTicks: number): number {
  return bootTimeSec * 1000 + Math.round((startTicks * 1000) / USER_HZ);
}

/** The last pid the kernel handed out, the fifth field of /proc/loadavg (`0.16 0.10 0.03 3/79 2017`). */
export function parseLastPid(text: string): number | undefined {
  const fields = text.trim().split(' ');
  return fields.length >= 5 ? toInt(fields[4]) : undefined;
}

/** uid → user name from /etc/passwd. Malformed lines are skipped. */
export function parsePasswd(text: string): Map<number, string> {
  const users = new Map<number, string>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(':');
    const uid = toInt(fields[2]);
    const name = fields[0];
    if (uid === undefined || !name || users.has(uid)) continue;
    users.set(uid, name);
  }
  return users;
}

function toInt(text: string | undefined): number | undefined {
  if (text === undefined || !/^-?\d+$/.test(text)) return undefined;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : undefined;
}
