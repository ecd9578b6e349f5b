// Attribution when the parent chain does not lead to the session (remote-access-notes.md's order):
// the PAM audit session, then SSH_CONNECTION, then a VNC session's X display; and what never counts.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ProcessTable, type ProcEntry } from '../sensors/processes/table.ts';
import { SessionRegistry, type RemoteSessionRecord } from '../sensors/sessions/registry.ts';
import { createAttribution, displayNumber } from './attribution.ts';

function emptyTable(): ProcessTable {
  const root = mkdtempSync(join(tmpdir(), 'omw-proc-'));
  writeFileSync(join(root, 'stat'), 'btime 1700000000\n');
  return new ProcessTable({ procRoot: root, passwdPath: join(root, 'passwd') });
}

function orphan(fields: Partial<ProcEntry>): ProcEntry {
  return { pid: 500, ppid: 1, startTicks: 1, startTimeMs: 1, name: 'x', image: '/x', commandLine: 'x', kernelThread: false, readAtMs: 0, firstGeneration: 0, generation: 0, ...fields };
}

const ssh: RemoteSessionRecord = { id: 'ssh-1', protocol: 'ssh', tool: 'sshd', user: 'vendor1', uid: 1001, sourceIp: '10.1.2.3', sourcePort: 40000, auditSessionId: 7, leaderPid: 100, leaderStartMs: 5, startTimeMs: 5 };
const vnc: RemoteSessionRecord = { id: 'vnc-1', protocol: 'vnc', tool: 'vnc', user: 'vendor2', uid: 1002, display: ':1', socketInode: 99, startTimeMs: 5 };

describe('session attribution without a parent chain', () => {
  const registry = new SessionRegistry();
  registry.add({ ...ssh });
  registry.add({ ...vnc });
  const attribute = createAttribution(registry);
  const table = emptyTable();

  it('follows the PAM audit session', () => {
    expect(attribute(orphan({ auditSessionId: 7 }), table)).toBe('ssh-1');
  });
  it('follows SSH_CONNECTION to the client endpoint, for a process of the session\'s user', () => {
    expect(attribute(orphan({ uid: 1001, env: { SSH_CONNECTION: '10.1.2.3 40000 10.0.0.5 22' } }), table)).toBe('ssh-1');
  });
  it('follows DISPLAY to a VNC session, for a process of the session\'s user', () => {
    expect(attribute(orphan({ uid: 1002, env: { DISPLAY: ':1.0' } }), table)).toBe('vnc-1');
  });
  it('does not let another user borrow a session by copying its environment', () => {
    // A local operator who read the vendor's client endpoint from /proc/net/tcp and set it himself.
    expect(attribute(orphan({ uid: 1000, env: { SSH_CONNECTION: '10.1.2.3 40000 10.0.0.5 22' } }), table)).toBeUndefined();
    expect(attribute(orphan({ uid: 1000, env: { DISPLAY: ':1' } }), table)).toBeUndefined();
    // Nor the same user from another login (another audit session).
    expect(attribute(orphan({ uid: 1001, auditSessionId: 9, env: { SSH_CONNECTION: '10.1.2.3 40000 10.0.0.5 22' } }), table)).toBeUndefined();
  });
  it('is the leader itself', () => {
    expect(attribute(orphan({ pid: 100, startTimeMs: 5 }), table)).toBe('ssh-1');
  });
  it('does not take a reused pid for the leader', () => {
    expect(attribute(orphan({ pid: 100, startTimeMs: 6 }), table)).toBeUndefined();
  });
  it('attributes nothing from another client, another audit session or another display', () => {
    expect(attribute(orphan({ uid: 1001, auditSessionId: 8, env: { SSH_CONNECTION: '10.1.2.3 40001 10.0.0.5 22', DISPLAY: ':2' } }), table)).toBeUndefined();
  });
  it('still attributes to a session that has ended', () => {
    const ended = new SessionRegistry();
    ended.add({ ...ssh });
    ended.retire('ssh-1');
    expect(ended.get('ssh-1')).toBeUndefined();
    expect(createAttribution(ended)(orphan({ auditSessionId: 7 }), table)).toBe('ssh-1');
  });
});

describe('displayNumber', () => {
  it.each([[':1', ':1'], [':1.0', ':1'], ['localhost:10.0', ':10'], ['weird', 'weird']])('%s', (display, expected) => {
    expect(displayNumber(display)).toBe(expected);
  });
});
