// Pure parsers for the facts the sessions sensor reads: sshd's process titles, utmp records and the
// SSH_CONNECTION variable. Total: bad input gives undefined or a count of skipped records.
import { compressIpv6 } from '../connections/parse.ts';

export interface SshdTitle {
  /**
   * `session`: the per-session process, `sshd: USER@pts/N`, `@notty`, or just `sshd: USER` once
   * authenticated; `priv`: its privileged monitor; `preauth`: a connection not yet authenticated.
   */
  role: 'session' | 'priv' | 'listener' | 'preauth';
  user?: string;
  /** `pts/0`, or undefined for `notty`; a multiplexed connection lists several, the first is kept. */
  tty?: string;
  /** A session process whose client opened a channel (`@pts/N`, `@notty`); false while it is bare. */
  channel?: boolean;
}

/**
 * Reads the title sshd gives its processes (OpenSSH ≤ 9.7 `sshd: …`, ≥ 9.8 `sshd-session: …`):
 * `sshd: alice@pts/0`, `sshd: alice@notty`, `sshd: alice [priv]`, `sshd: alice [net]`,
 * `sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups`.
 */
export function parseSshdTitle(commandLine: string): SshdTitle | undefined {
  const match = /^sshd(?:-session)?: (.+)$/.exec(commandLine.trimEnd());
  if (!match) return undefined;
  const rest = match[1]!;
  if (rest.includes('[listener]')) return { role: 'listener' };
  const session = /^(\S+)@((?:pts\/\d+|notty)(?:,(?:pts\/\d+|notty))*)$/.exec(rest);
  if (session) {
    const first = session[2]!.split(',')[0]!;
    return first === 'notty' ? { role: 'session', user: session[1]!, channel: true } : { role: 'session', user: session[1]!, tty: first, channel: true };
  }
  const priv = /^(\S+) \[priv\]$/.exec(rest);
  if (priv) return { role: 'priv', user: priv[1]! };
  // After authentication and before the client opens a channel (or for good, with `ssh -N` tunnels
  // and ControlMaster connections) the session process is titled with the bare user name.
  const authenticated = /^([^\s[\]@]+)$/.exec(rest);
  if (authenticated) return { role: 'session', user: authenticated[1]!, channel: false };
  return { role: 'preauth' };
}

export interface SshConnection {
  clientIp: string;
  clientPort: number;
  serverIp: string;
  serverPort: number;
}

/** `SSH_CONNECTION=client_ip client_port server_ip server_port`. */
export function parseSshConnection(value: string | undefined): SshConnection | undefined {
  const parts = value?.trim().split(' ');
  if (!parts || parts.length !== 4) return undefined;
  const clientPort = Number(parts[1]);
  const serverPort = Number(parts[3]);
  if (!isPort(clientPort) || !isPort(serverPort) || !parts[0] || !parts[2]) return undefined;
  return { clientIp: parts[0], clientPort, serverIp: parts[2], serverPort };
}

function isPort(value: number): boolean {
  return Number.isInteger(value) && value > 0 && value <= 65_535;
}

// ---- utmp (glibc, x86_64 and aarch64: 384-byte records) ----

export const UTMP_RECORD_BYTES = 384;

export const UtmpType = {
  EMPTY: 0, RUN_LVL: 1, BOOT_TIME: 2, NEW_TIME: 3, OLD_TIME: 4, INIT_PROCESS: 5, LOGIN_PROCESS: 6,
  USER_PROCESS: 7, DEAD_PROCESS: 8, ACCOUNTING: 9,
} as const;

export interface UtmpRecord {
  type: number;
  pid: number;
  line: string;
  user: string;
  host: string;
  /** Seconds since the epoch. */
  timeSec: number;
  /** The remote address, when the record has one. */
  addr?: string;
}

export interface ParsedUtmp {
  records: UtmpRecord[];
  /** Records skipped: a truncated tail, an unknown type, or text that is not a C string. */
  malformed: number;
}

export function parseUtmp(data: Uint8Array): ParsedUtmp {
  const records: UtmpRecord[] = [];
  let malformed = data.length % UTMP_RECORD_BYTES === 0 ? 0 : 1;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (let at = 0; at + UTMP_RECORD_BYTES <= data.length; at += UTMP_RECORD_BYTES) {
    const type = view.getInt16(at, true);
    if (type < UtmpType.EMPTY || type > UtmpType.ACCOUNTING) {
      malformed++;
      continue;
    }
    if (type === UtmpType.EMPTY) continue;
    const line = cString(data, at + 8, 32);
    const user = cString(data, at + 44, 32);
    const host = cString(data, at + 76, 256);
    if (line === undefined || user === undefined || host === undefined) {
      malformed++;
      continue;
    }
    const record: UtmpRecord = { type, pid: view.getInt32(at + 4, true), line, user, host, timeSec: view.getInt32(at + 340, true) };
    const addr = utmpAddress(data.subarray(at + 348, at + 364));
    if (addr) record.addr = addr;
    records.push(record);
  }
  return { records, malformed };
}

/** A NUL-padded field; undefined if it holds control characters (not a name, so not trusted). */
function cString(data: Uint8Array, at: number, size: number): string | undefined {
  let end = at;
  while (end < at + size && data[end] !== 0) end++;
  const text = Buffer.from(data.subarray(at, end)).toString('utf8');
  // eslint-disable-next-line no-control-regex
  return /[\u0000-\u001f\u007f]/.test(text) ? undefined : text;
}

/** ut_addr_v6: IPv4 in the first word (network order, others zero), or a full IPv6 address. */
function utmpAddress(bytes: Uint8Array): string | undefined {
  if (bytes.every((b) => b === 0)) return undefined;
  if (bytes.subarray(4).every((b) => b === 0)) return Array.from(bytes.subarray(0, 4)).join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return compressIpv6(groups);
}
