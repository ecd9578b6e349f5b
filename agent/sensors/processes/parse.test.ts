import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ProcessCreationFields } from '../../../collector/protocol/index.ts';
import { createAttribution } from '../../enrich/attribution.ts';
import { silentLogger } from '../../log/index.ts';
import { goldenFixtures } from '../../../test/helpers/golden.ts';
import { createConnectionSensor } from '../connections/index.ts';
import { createCatalog } from '../sessions/catalog.ts';
import { createSessionSensor } from '../sessions/index.ts';
import type { Observation } from '../types.ts';
import { creationFields, createProcessSensor } from './index.ts';
import {
  decodeTty, parseAuditSessionId, parseBootTime, parseCmdline, parseEnviron, parseLastPid, parsePasswd, parseStat,
  parseStatusUid, startTimeMs,
} from './parse.ts';

/**
 * Runs the process and session sensors over a captured /proc tree (see
 * scripts/fixtures/capture-ssh-session.ts): what the agent would report about each process, which
 * session each belongs to, and what it skipped.
 */
async function readTree(root: string): Promise<unknown> {
  const logger = silentLogger();
  // The tree stores `exe` and `cwd` as files holding the link's target.
  const readLink = (path: string) => readFileSync(path, 'utf8');
  const processes = createProcessSensor({ hostId: 'fixture-host', logger, procRoot: root, passwdPath: join(root, 'passwd'), readLink });
  const connections = createConnectionSensor({ table: processes.table, catalog: createCatalog(), logger, procRoot: root });
  const sessions = createSessionSensor({ hostId: 'fixture-host', processes, connections, logger, utmpPath: join(root, 'utmp') });
  processes.setAttribution(createAttribution(sessions.registry));
  const seen: Observation[] = [];
  await sessions.start((o) => seen.push(o));
  await processes.start((o) => seen.push(o));
  await processes.stop();
  const { table } = processes;
  return {
    processes: [...table.entries()].sort((a, b) => a.pid - b.pid).map((entry) => (entry.kernelThread
      ? { pid: entry.pid, kernelThread: true }
      : { fields: ProcessCreationFields.parse(creationFields(entry, table, 'fixture-host', entry.sessionId ?? undefined)), env: entry.env, auditSessionId: entry.auditSessionId })),
    observations: seen,
    skipped: { vanished: table.counters.vanished, malformed: table.counters.malformed, permissionDenied: table.counters.permissionDenied },
  };
}

const fixtures = new URL('./fixtures/', import.meta.url);
const trees = new Map<string, unknown>();
// The golden helper's parse is synchronous; the trees are read once, before the comparisons run.
for (const name of ['linux-proc-ssh-session']) trees.set(name, await readTree(new URL(`./input/${name}`, fixtures).pathname));
goldenFixtures({ fixtures, match: /^linux-proc-/, parse: (_path, name) => trees.get(name) });

describe('the captured SSH session tree', () => {
  it('attributes the sleep to the session and the session to its user and client', () => {
    const tree = trees.get('linux-proc-ssh-session') as { processes: Array<{ fields?: Record<string, unknown> }>; observations: Observation[] };
    const sleep = tree.processes.find((p) => p.fields?.['CommandLine'] === 'sleep 60')?.fields;
    const start = tree.observations.find((o) => o.category === 'remote_session')?.fields as Record<string, unknown>;
    expect(start).toMatchObject({ Action: 'start', Protocol: 'ssh', User: 'omwtest', SourceIp: '127.0.0.1', Tty: 'pts/0' });
    expect(sleep).toMatchObject({ SessionId: start['SessionId'], User: 'omwtest', Tty: 'pts/0', ParentImage: '/usr/sbin/sshd' });
  });
});

describe('parseStat', () => {
  it('reads a comm with spaces and parentheses', () => {
    const stat = parseStat('42 (a) b (c)) S 1 42 42 34816 42 4194304 0 0 0 0 0 0 0 0 20 0 1 0 12345 0 0');
    expect(stat).toMatchObject({ pid: 42, comm: 'a) b (c)', state: 'S', ppid: 1, ttyNr: 34816, startTicks: 12345, kernelThread: false });
  });
  it('knows a kernel thread by PF_KTHREAD', () => {
    expect(parseStat('2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0')?.kernelThread).toBe(true);
  });
  it('refuses truncated or garbled text', () => {
    for (const bad of ['', '42', '42 (x', '42 (x) S 1 2', 'x (y) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5']) expect(parseStat(bad)).toBeUndefined();
  });
});

describe('small /proc parsers', () => {
  it('decodes terminals', () => {
    expect(decodeTty(34816)).toBe('pts/0');
    expect(decodeTty(34817)).toBe('pts/1');
    expect(decodeTty((137 << 8) | 4)).toBe('pts/260');
    expect(decodeTty(1025)).toBe('tty1');
    expect(decodeTty(1088)).toBe('ttyS0');
    expect(decodeTty(0)).toBeUndefined();
  });
  it('joins argv, drops title padding, and flags a cut', () => {
    expect(parseCmdline('sshd: alice@pts/0\0\0\0\0', 100)).toEqual({ commandLine: 'sshd: alice@pts/0', truncated: false });
    expect(parseCmdline('ls\0-l\0/tmp\0', 100)).toEqual({ commandLine: 'ls -l /tmp', truncated: false });
    expect(parseCmdline(`x\0${'a'.repeat(50)}\0`, 10)).toEqual({ commandLine: 'x aaaaaaaa', truncated: true });
  });
  it('picks only the wanted environment variables', () => {
    expect(parseEnviron('A=1\0SSH_CONNECTION=1.2.3.4 5 6.7.8.9 22\0=x\0noequals\0', new Set(['SSH_CONNECTION', 'B']))).toEqual({ SSH_CONNECTION: '1.2.3.4 5 6.7.8.9 22' });
  });
  it('reads uid, audit session, boot time, last pid and passwd', () => {
    expect(parseStatusUid('Name:\tx\nUid:\t1001\t1001\t1001\t1001\nGid:\t0\n')).toBe(1001);
    // A setuid-root program run by uid 1001 acts as root.
    expect(parseStatusUid('Name:\tx\nUid:\t1001\t0\t0\t0\nGid:\t0\n')).toBe(0);
    expect(parseStatusUid('Name:\tx\n')).toBeUndefined();
    expect(parseAuditSessionId('4294967295')).toBeUndefined();
    expect(parseAuditSessionId('7\n')).toBe(7);
    expect(parseBootTime('cpu 1 2\nbtime 1795825698\n')).toBe(1795825698);
    expect(startTimeMs(1_000, 250)).toBe(1_002_500);
    expect(parseLastPid('0.16 0.10 0.03 3/79 2017\n')).toBe(2017);
    expect(parseLastPid('garbage')).toBeUndefined();
    expect(parsePasswd('root:x:0:0::/root:/bin/bash\nbad line\nalice:x:1001:1001::/home/alice:/bin/sh\n# c\n')).toEqual(new Map([[0, 'root'], [1001, 'alice']]));
  });
});
