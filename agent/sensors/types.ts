// What every sensor is and the raw records sensors share between their pure parsers and the agent.
// A sensor owns one OS source; it turns raw records into observations and says how healthy it is.
import type { Category, FieldsOf } from '../../collector/protocol/index.ts';

/** One thing a sensor saw; the agent wraps it in the envelope (id, host, product). */
export interface Observation<C extends Category = Category> {
  category: C;
  /** When it happened, as best the source knows (ms since the epoch). */
  timeMs: number;
  fields: FieldsOf<C>;
}

export type Emit = (observation: Observation) => void;

export type SensorState = 'ok' | 'degraded' | 'unavailable';

export interface SensorHealth {
  name: string;
  state: SensorState;
  /** Where the data comes from on this host (`/proc`, `/proc/net/tcp`, `netstat -ano`, …). */
  source: string;
  /** Why the state is not `ok`: what the sensor cannot see and what would fix it. */
  reason?: string;
  /** Sources that do not exist on this host though the sensor works without them (no utmp, no IPv6). */
  notes?: string[];
  /** Received, emitted, skipped and errored counts, by name; every skip is counted here. */
  counters: Record<string, number>;
}

export interface Sensor {
  readonly name: string;
  /** Takes a first look and begins watching; observations go to `emit`. */
  start(emit: Emit): Promise<void>;
  stop(): Promise<void>;
  health(): SensorHealth;
}

/** A process as the process sensor knows it; the same shape whatever the platform. */
export interface ProcessInfo {
  pid: number;
  ppid: number;
  /** Start time in ms since the epoch; with `pid` it identifies the process across pid reuse. */
  startTimeMs: number;
  /** Short name (Linux `comm`, Windows image name). */
  name: string;
  /** Full path of the executable; empty when it could not be read. */
  image: string;
  commandLine: string;
  commandLineTruncated?: boolean;
  cwd?: string;
  uid?: number;
  user?: string;
  /** Controlling terminal, `pts/0`; absent when none. */
  tty?: string;
  /** Linux audit session id (`/proc/PID/sessionid`) when set by PAM. */
  auditSessionId?: number;
  /** The few environment variables attribution needs (SSH_CONNECTION, DISPLAY, …), when readable. */
  env?: Record<string, string>;
}

export type TcpState = 'ESTABLISHED' | 'LISTEN' | 'SYN_SENT' | 'SYN_RECV' | 'FIN_WAIT1' | 'FIN_WAIT2'
  | 'TIME_WAIT' | 'CLOSE' | 'CLOSE_WAIT' | 'LAST_ACK' | 'CLOSING' | 'NEW_SYN_RECV' | 'UNKNOWN';

/** One socket from `/proc/net/tcp{,6}` (Linux) or `netstat -ano` (Windows). */
export interface SocketEntry {
  protocol: 'tcp' | 'udp';
  localIp: string;
  localPort: number;
  remoteIp: string;
  remotePort: number;
  state: TcpState;
  /** Linux: the socket's inode, to find its owning process through `/proc/PID/fd`. */
  inode?: number;
  /** Linux: the socket owner's uid. */
  uid?: number;
  /** Windows: the owning process, as `netstat -ano` prints it. */
  pid?: number;
}

/** One logon session as Windows `query user` / `qwinsta` prints it. */
export interface WindowsLogonSession {
  user?: string;
  /** `console`, `rdp-tcp#0`, `services`, … ; absent for a disconnected session. */
  sessionName?: string;
  id: number;
  state: string;
  idle?: string;
  /** Logon time as printed (locale-dependent); `query user` only. */
  logonTime?: string;
}
