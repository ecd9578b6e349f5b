// The remote sessions live on this host, indexed the ways a process can lead to one: its leader
// process, the PAM audit session, the SSH client endpoint, the X display.
import { createHash } from 'node:crypto';

export interface RemoteSessionRecord {
  id: string;
  protocol: string;
  tool: string;
  user?: string;
  /** The uid the session's process runs as (the logged-in user's). */
  uid?: number;
  sourceIp?: string;
  sourcePort?: number;
  localPort?: number;
  /** The process the session hangs from: sshd's per-session process, the tool's connection owner. */
  leaderPid?: number;
  leaderStartMs?: number;
  image?: string;
  tty?: string;
  auditSessionId?: number;
  /** An X display (`:1`) the session shows, for VNC. */
  display?: string;
  /** The socket that carries it, for sessions recognised by their connection. */
  socketInode?: number;
  /** An SSH login whose client has not opened a channel yet: known, not yet announced. */
  pending?: boolean;
  startTimeMs: number;
}

/** A session id stable for the session's life and across agent restarts: derived, not random. */
export function sessionId(protocol: string, ...parts: Array<string | number>): string {
  return `${protocol}-${createHash('sha256').update(parts.join('\0')).digest('hex').slice(0, 20)}`;
}

/** Ended sessions kept for attribution: what a session left running still leads back to it. */
export const RETIRED_SESSIONS_KEPT = 1024;

export class SessionRegistry {
  readonly #retired = new Map<string, RemoteSessionRecord>();
  readonly #retiredByAudit = new Map<number, RemoteSessionRecord>();
  readonly #retiredByClient = new Map<string, RemoteSessionRecord>();
  readonly #byId = new Map<string, RemoteSessionRecord>();
  readonly #byLeader = new Map<number, RemoteSessionRecord>();
  readonly #byAudit = new Map<number, RemoteSessionRecord>();
  readonly #byClient = new Map<string, RemoteSessionRecord>();
  readonly #byDisplay = new Map<string, RemoteSessionRecord>();

  get size(): number {
    return this.#byId.size;
  }

  all(): RemoteSessionRecord[] {
    return [...this.#byId.values()];
  }

  get(id: string): RemoteSessionRecord | undefined {
    return this.#byId.get(id);
  }

  add(record: RemoteSessionRecord): void {
    this.#byId.set(record.id, record);
    if (record.leaderPid !== undefined) this.#byLeader.set(record.leaderPid, record);
    if (record.auditSessionId !== undefined) this.#byAudit.set(record.auditSessionId, record);
    if (record.sourceIp && record.sourcePort) this.#byClient.set(clientKey(record.sourceIp, record.sourcePort), record);
    if (record.display) this.#byDisplay.set(record.display, record);
  }

  /** Adds what was learnt after the session was registered (its client endpoint, say). */
  update(record: RemoteSessionRecord, changes: Partial<RemoteSessionRecord>): void {
    this.remove(record.id);
    Object.assign(record, changes);
    this.add(record);
  }

  /**
   * Ends a session: it leaves the live set, but processes it left behind (a `setsid nohup` job, a
   * backdoor) are still attributed to it through its audit session and client endpoint.
   */
  retire(id: string): RemoteSessionRecord | undefined {
    const record = this.remove(id);
    if (!record) return undefined;
    this.#retired.set(record.id, record);
    if (record.auditSessionId !== undefined) this.#retiredByAudit.set(record.auditSessionId, record);
    if (record.sourceIp && record.sourcePort) this.#retiredByClient.set(clientKey(record.sourceIp, record.sourcePort), record);
    if (this.#retired.size > RETIRED_SESSIONS_KEPT) {
      const oldest = this.#retired.values().next().value!;
      this.#retired.delete(oldest.id);
      deleteIf(this.#retiredByAudit, oldest.auditSessionId, oldest);
      if (oldest.sourceIp && oldest.sourcePort) deleteIf(this.#retiredByClient, clientKey(oldest.sourceIp, oldest.sourcePort), oldest);
    }
    return record;
  }

  /** A live or recently ended session. */
  known(id: string): RemoteSessionRecord | undefined {
    return this.#byId.get(id) ?? this.#retired.get(id);
  }

  remove(id: string): RemoteSessionRecord | undefined {
    const record = this.#byId.get(id);
    if (!record) return undefined;
    this.#byId.delete(id);
    deleteIf(this.#byLeader, record.leaderPid, record);
    deleteIf(this.#byAudit, record.auditSessionId, record);
    if (record.sourceIp && record.sourcePort) deleteIf(this.#byClient, clientKey(record.sourceIp, record.sourcePort), record);
    deleteIf(this.#byDisplay, record.display, record);
    return record;
  }

  byLeader(pid: number, startTimeMs: number): RemoteSessionRecord | undefined {
    const record = this.#byLeader.get(pid);
    return record && record.leaderStartMs === startTimeMs ? record : undefined;
  }

  /** The session, live or recently ended, of a PAM audit session id. */
  byAudit(auditSessionId: number): RemoteSessionRecord | undefined {
    return this.#byAudit.get(auditSessionId) ?? this.#retiredByAudit.get(auditSessionId);
  }

  /** The session, live or recently ended, of an SSH client endpoint. */
  byClient(ip: string, port: number): RemoteSessionRecord | undefined {
    const key = clientKey(ip, port);
    return this.#byClient.get(key) ?? this.#retiredByClient.get(key);
  }

  byDisplay(display: string): RemoteSessionRecord | undefined {
    return this.#byDisplay.get(display);
  }
}

function clientKey(ip: string, port: number): string {
  return `${ip}|${port}`;
}

function deleteIf<K>(map: Map<K, RemoteSessionRecord>, key: K | undefined, record: RemoteSessionRecord): void {
  if (key !== undefined && map.get(key) === record) map.delete(key);
}
