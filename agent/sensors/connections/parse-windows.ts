// Pure parser for Windows `netstat -ano` output: TCP and UDP sockets, IPv4 and IPv6, with their pid.
// Total: any text gives a result; rows that cannot be read are counted in `skipped`, never thrown.
import { isIPv4, isIPv6 } from 'node:net';
import type { SocketEntry, TcpState } from '../types.ts';

/**
 * What a Windows text parser returns: the records it could read, and how many non-blank lines it
 * could not (the title and header lines before the first row are not counted).
 */
export interface ParsedNetstat {
  entries: SocketEntry[];
  skipped: number;
}

/*
 * A row is `Proto  Local  Foreign  [State]  PID`, separated by runs of spaces (at least two when an
 * IPv6 address overflows its column). The protocol word is never translated, so a row is found by
 * it; the title ("Active Connections", "Aktive Verbindungen") and header are ignored. UDP rows have
 * no state, and their foreign address is `*:*`.
 *
 * The state word IS translated on some display languages (German prints ABHÖREN, HERGESTELLT, …),
 * and the console's OEM code page can mangle its umlaut, so non-ASCII runs are folded to `?`
 * before lookup. A state still unknown stays `UNKNOWN`, except that a TCP row whose foreign end is
 * the unspecified address with port 0 can only be a listener.
 */
const STATES: Readonly<Record<string, TcpState>> = {
  LISTENING: 'LISTEN',
  LISTEN: 'LISTEN',
  ESTABLISHED: 'ESTABLISHED',
  SYN_SENT: 'SYN_SENT',
  SYN_RECEIVED: 'SYN_RECV',
  SYN_RCVD: 'SYN_RECV',
  FIN_WAIT_1: 'FIN_WAIT1',
  FIN_WAIT_2: 'FIN_WAIT2',
  TIME_WAIT: 'TIME_WAIT',
  CLOSE_WAIT: 'CLOSE_WAIT',
  LAST_ACK: 'LAST_ACK',
  CLOSING: 'CLOSING',
  CLOSED: 'CLOSE',
  DELETE_TCB: 'CLOSE',
  // German (de-DE). The first five are seen in public captures; the rest follow the same scheme.
  'ABH?REN': 'LISTEN',
  ABHOEREN: 'LISTEN',
  HERGESTELLT: 'ESTABLISHED',
  WARTEND: 'TIME_WAIT',
  SCHLIESSEN_WARTEN: 'CLOSE_WAIT',
  SYN_GESENDET: 'SYN_SENT',
  SYN_EMPFANGEN: 'SYN_RECV',
  FIN_WARTEN_1: 'FIN_WAIT1',
  FIN_WARTEN_2: 'FIN_WAIT2',
  GESCHLOSSEN: 'CLOSE',
};

interface Endpoint {
  ip: string;
  port: number;
  family: 4 | 6 | 0;
}

/** Parses `netstat -ano` (also `-an`, whose rows have no pid). */
export function parseNetstatAno(text: string): ParsedNetstat {
  const entries: SocketEntry[] = [];
  let skipped = 0;
  if (typeof text !== 'string') return { entries, skipped };
  let seenRow = false;
  for (const line of text.replace(/^\uFEFF/, '').split(/\r\n|\r|\n/)) {
    const tokens = line.trim().split(/\s+/);
    const proto = tokens[0]?.toUpperCase();
    if (proto !== 'TCP' && proto !== 'UDP') {
      // Title and header come before the first row; anything else is a line we could not read.
      if (seenRow && line.trim() !== '') skipped += 1;
      continue;
    }
    seenRow = true;
    const entry = proto === 'TCP' ? parseTcp(tokens) : parseUdp(tokens);
    if (entry === undefined) skipped += 1;
    else entries.push(entry);
  }
  return { entries, skipped };
}

function parseTcp(tokens: string[]): SocketEntry | undefined {
  // TCP  local  foreign  STATE  pid   (no pid with -an)
  if (tokens.length < 4) return undefined;
  const local = parseEndpoint(tokens[1]);
  const remote = parseEndpoint(tokens[2]);
  if (local === undefined || remote === undefined || local.family === 0) return undefined;
  const last = tokens[tokens.length - 1] ?? '';
  const hasPid = tokens.length >= 5 && /^\d+$/.test(last);
  const stateWords = tokens.slice(3, hasPid ? -1 : undefined);
  if (stateWords.length === 0) return undefined;
  let state = STATES[foldState(stateWords.join('_'))] ?? 'UNKNOWN';
  if (state === 'UNKNOWN' && remote.port === 0 && isUnspecified(remote.ip)) state = 'LISTEN';
  return socket('tcp', local, remote, state, hasPid ? Number(last) : undefined);
}

function parseUdp(tokens: string[]): SocketEntry | undefined {
  // UDP  local  *:*  pid   (no state column; no pid with -an)
  if (tokens.length < 3 || tokens.length > 4) return undefined;
  const local = parseEndpoint(tokens[1]);
  const remote = parseEndpoint(tokens[2]);
  if (local === undefined || remote === undefined || local.family === 0) return undefined;
  const pidText = tokens[3];
  if (pidText !== undefined && !/^\d+$/.test(pidText)) return undefined;
  // `*:*` is "no peer": written as the unspecified address of the local family, port 0, the way
  // /proc/net/udp shows it on Linux.
  const peer = remote.family === 0 ? { ip: local.family === 6 ? '::' : '0.0.0.0', port: 0, family: local.family } : remote;
  return socket('udp', local, peer, 'UNKNOWN', pidText === undefined ? undefined : Number(pidText));
}

function socket(
  protocol: 'tcp' | 'udp',
  local: Endpoint,
  remote: Endpoint,
  state: TcpState,
  pid: number | undefined,
): SocketEntry {
  return {
    protocol,
    localIp: local.ip,
    localPort: local.port,
    remoteIp: remote.ip,
    remotePort: remote.port,
    state,
    ...(pid !== undefined && Number.isSafeInteger(pid) ? { pid } : {}),
  };
}

/** `1.2.3.4:80`, `[::]:135`, `[fe80::1%12]:500` (scope id kept), or `*:*` (family 0). */
function parseEndpoint(text: string | undefined): Endpoint | undefined {
  if (text === undefined) return undefined;
  if (text === '*:*') return { ip: '*', port: 0, family: 0 };
  const colon = text.lastIndexOf(':');
  if (colon <= 0) return undefined;
  const host = text.slice(0, colon);
  const port = parsePort(text.slice(colon + 1));
  if (port === undefined) return undefined;
  if (host.startsWith('[') && host.endsWith(']')) {
    const ip = host.slice(1, -1);
    return isIPv6(ip) ? { ip, port, family: 6 } : undefined;
  }
  return isIPv4(host) ? { ip: host, port, family: 4 } : undefined;
}

function parsePort(text: string): number | undefined {
  if (text === '*') return 0;
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port <= 65535 ? port : undefined;
}

function isUnspecified(ip: string): boolean {
  return ip === '0.0.0.0' || ip === '::';
}

function foldState(state: string): string {
  return state.toUpperCase().replace(/[^A-Z0-9_]+/g, '?');
}
