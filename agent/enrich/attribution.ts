// Session attribution: which remote session a process belongs to. The order held on this host
// (remote-access-notes.md): the parent chain to a session's leader; else the PAM audit session
// (it survives re-parenting); else SSH_CONNECTION joined to the session's client endpoint; else
// the X display of a VNC session.
import type { Attribute, ProcEntry, ProcessTable } from '../sensors/processes/index.ts';
import type { RemoteSessionRecord, SessionRegistry } from '../sensors/sessions/registry.ts';
import { parseSshConnection } from '../sensors/sessions/parse.ts';

export function createAttribution(registry: SessionRegistry): Attribute {
  return (entry: ProcEntry, table: ProcessTable): string | undefined => {
    const own = registry.byLeader(entry.pid, entry.startTimeMs);
    if (own) return own.id;
    for (const ancestor of table.ancestors(entry)) {
      // A positive answer of an ancestor holds for its descendants; a negative one may be stale
      // (the session was recognised after it), so the walk goes on.
      if (typeof ancestor.sessionId === 'string' && registry.known(ancestor.sessionId)) return ancestor.sessionId;
      const led = registry.byLeader(ancestor.pid, ancestor.startTimeMs);
      if (led) return led.id;
    }
    if (entry.auditSessionId !== undefined) {
      // The kernel sets the audit session at login and no user can change it: trusted as it is.
      const audited = registry.byAudit(entry.auditSessionId);
      if (audited) return audited.id;
    }
    // The environment is the process's own to write: it counts only for a process of the session's
    // user that does not belong to another audit session.
    const sameOwner = (record: RemoteSessionRecord) => record.uid !== undefined && record.uid === entry.uid
      && (entry.auditSessionId === undefined || record.auditSessionId === undefined || entry.auditSessionId === record.auditSessionId);
    const ssh = parseSshConnection(entry.env?.['SSH_CONNECTION']);
    if (ssh) {
      const byClient = registry.byClient(ssh.clientIp, ssh.clientPort);
      if (byClient && sameOwner(byClient)) return byClient.id;
    }
    const display = entry.env?.['DISPLAY'];
    if (display) {
      const shown = registry.byDisplay(displayNumber(display));
      if (shown && sameOwner(shown)) return shown.id;
    }
    return undefined;
  };
}

/** `localhost:1.0`, `:1`, `:1.0` → `:1`. */
export function displayNumber(display: string): string {
  const match = /:(\d+)(?:\.\d+)?$/.exec(display);
  return match ? `:${match[1]}` : display;
}
