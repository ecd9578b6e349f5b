// Pure parsers for the socket tables of Linux (/proc/net/tcp, /proc/net/tcp6) and for socket links
// in /proc/PID/fd. Total: a malformed line is skipped and counted, never thrown.
import type { SocketEntry, TcpState } from '../types.ts';

/** The `st` column of /proc/net/tcp, from include/net/tcp_states.h. */
const TCP_STATES: Record<string, TcpState> = {
  '01': 'ESTABLISHED', '02': 'SYN_SENT', '03': 'SYN_RECV', '04': 'FIN_WAIT1', '05': 'FIN_WAIT2',
  '06': 'TIME_WAIT', '07': 'CLOSE', '08': 'CLOSE_WAIT', '09': 'LAST_ACK', '0A': 'LISTEN',
  '0B': 'CLOSING', '0C': 'NEW_SYN_RECV',
};

export interface ParsedSockets {
  sockets: SocketEntry[];
  malformed: number;
}

/** Parses /proc/net/tcp or /proc/net/tcp6 (the header line is skipped). */
export function parseProcNetTcp(text: string): ParsedSockets {
  const sockets: SocketEntry[] = [];
  let malformed = 0;
  const lines = text.split('\n');
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]?.trim();
    if (!line) continue;
    const socket = parseLine(line);
    if (socket) sockets.push(socket);
    else malformed++;
  }
  return { sockets, malformed };
}

function parseLine(line: string): SocketEntry | undefined {
  // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode …
  const f = line.split(/\s+/);
  if (f.length < 10) return undefined;
  const local = parseEndpoint(f[1]);
  const remote = parseEndpoint(f[2]);
  const uid = Number(f[7]);
  const inode = Number(f[9]);
  if (!local || !remote || !/^[0-9A-F]{2}$/i.test(f[3] ?? '') || !Number.isSafeInteger(uid) || !Number.isSafeInteger(inode)) {
    return undefined;
  }
  return {
    protocol: 'tcp',
    localIp: local.ip,
    localPort: local.port,
    remoteIp: remote.ip,
    remotePort: remote.port,
    state: TCP_STATES[(f[3] ?? '').toUpperCase()] ?? 'UNKNOWN',
    uid,
    inode,
  };
}

/** `0100007F:0016` → 127.0.0.1:22. Addresses are in host byte order, 32 bits at a time. */
export function parseEndpoint(text: string | undefined): { ip: string; port: number } | undefined {
  if (!text) return undefined;
  const colon = text.indexOf(':');
  const hex = text.slice(0, colon);
  const port = Number.parseInt(text.slice(colon + 1), 16);
  if (colon < 0 || !/^[0-9A-F]+$/i.test(hex) || !Number.isInteger(port) || port < 0 || port > 65_535) return undefined;
  if (hex.length === 8) return { ip: ipv4(hex), port };
  if (hex.length !== 32) return undefined;
  const words = [0, 8, 16, 24].map((at) => hex.slice(at, at + 8));
  // An IPv4 client of a dual-stack socket shows as ::ffff:a.b.c.d; report it as plain IPv4.
  if (words[0] === '00000000' && words[1] === '00000000' && words[2]?.toUpperCase() === 'FFFF0000') {
    return { ip: ipv4(words[3] ?? ''), port };
  }
  const groups: string[] = [];
  for (const word of words) {
    const bytes = littleEndianBytes(word);
    groups.push(((bytes[0]! << 8) | bytes[1]!).toString(16), ((bytes[2]! << 8) | bytes[3]!).toString(16));
  }
  return { ip: compressIpv6(groups), port };
}

function ipv4(hex: string): string {
  return littleEndianBytes(hex).join('.');
}

function littleEndianBytes(word: string): number[] {
  const bytes: number[] = [];
  for (let at = 6; at >= 0; at -= 2) bytes.push(Number.parseInt(word.slice(at, at + 2), 16));
  return bytes;
}

/** RFC 5952 text form: the longest run of two or more zero groups becomes `::`. */
export function compressIpv6(groups: string[]): string {
  let bestAt = -1;
  let bestLength = 1;
  for (let at = 0; at < groups.length;) {
    if (groups[at] !== '0') {
      at++;
      continue;
    }
    let end = at;
    while (end < groups.length && groups[end] === '0') end++;
    if (end - at > bestLength) {
      bestAt = at;
      bestLength = end - at;
    }
    at = end;
  }
  if (bestAt < 0) return groups.join(':');
  return `${groups.slice(0, bestAt).join(':')}::${groups.slice(bestAt + bestLength).join(':')}`;
}

/** `socket:[12345]` (a /proc/PID/fd link target) → 12345. */
export function socketInode(linkTarget: string): number | undefined {
  if (!linkTarget.startsWith('socket:[') || !linkTarget.endsWith(']')) return undefined;
  const inode = Number(linkTarget.slice(8, -1));
  return Number.isSafeInteger(inode) ? inode : undefined;
}
