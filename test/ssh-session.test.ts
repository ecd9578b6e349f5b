// The agent's eyes on a real SSH session: sshd on loopback, a key login as a test user, a command in
// the session. The session's start and end, and the attribution of its processes, are what plant IT
// and the SOC rely on.
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProcessCreationFields, RemoteSessionFields } from '../collector/protocol/index.ts';
import { defaultConfig } from '../agent/config/index.ts';
import { silentLogger } from '../agent/log/index.ts';
import { createSensors, type SensorSet } from '../agent/sensors/index.ts';
import { fieldsOf, observationLog, type ObservationLog } from './helpers/observations.ts';
import { sshdAvailable, startSshd, type SshdHandle, type SshdOptions } from './helpers/sshd.ts';

const available = sshdAvailable();
if (!available.ok) console.warn(`skipping SSH integration tests: ${available.reason}`);

/**
 * A real sshd and the agent's sensors watching this host, for one describe block. The getters are
 * read inside tests, after beforeAll has filled them.
 */
function sensorsBesideSshd(options: Partial<SshdOptions> = {}): { readonly sshd: SshdHandle; readonly sensors: SensorSet; readonly log: ObservationLog } {
  let sshd: SshdHandle | undefined;
  let sensors: SensorSet | undefined;
  const log = observationLog();
  beforeAll(async () => {
    sshd = await startSshd(options);
    sensors = createSensors({ config: defaultConfig(), hostId: 'test-host', logger: silentLogger() });
    for (const sensor of sensors.ordered) await sensor.start(log.emit);
  });
  afterAll(async () => {
    for (const sensor of sensors?.ordered.toReversed() ?? []) await sensor.stop();
    await sshd?.stop();
  });
  return {
    get sshd() { return sshd!; },
    get sensors() { return sensors!; },
    log,
  };
}

describe.skipIf(!available.ok)('SSH sessions through a real sshd', () => {
  const ctx = sensorsBesideSshd();

  it('reports the session with user and source, attributes its processes, and ends it with a duration', async () => {
    const { sshd, sensors, log } = ctx;
    const client = sshd.ssh('sleep 30');
    const start = RemoteSessionFields.parse((await log.waitFor(
      (o) => o.category === 'remote_session' && fieldsOf(o)['Action'] === 'start' && fieldsOf(o)['LocalPort'] === sshd.port,
      10_000, 'the ssh session start')).fields);
    expect(start).toMatchObject({ Protocol: 'ssh', Tool: 'sshd', User: sshd.user, SourceIp: '127.0.0.1', LocalPort: sshd.port });
    expect(start.SourcePort).toBeGreaterThan(0);
    expect(start.Tty).toBeUndefined();

    const sleep = ProcessCreationFields.parse((await log.waitFor(
      (o) => o.category === 'process_creation' && fieldsOf(o)['CommandLine'] === 'sleep 30' && fieldsOf(o)['User'] === sshd.user,
      10_000, 'the sleep in the session')).fields);
    expect(sleep.SessionId).toBe(start.SessionId);
    expect(sleep.Image).toBe('/usr/bin/sleep');

    // The session is reachable from the process: its id leads to who and from where.
    const session = sensors.sessions.registry.get(sleep.SessionId!);
    expect(session).toMatchObject({ user: sshd.user, sourceIp: '127.0.0.1', sourcePort: start.SourcePort });

    // A network_connection for the inbound SSH connection, from the same client port.
    const inbound = await log.waitFor((o) => o.category === 'network_connection' && fieldsOf(o)['SourcePort'] === start.SourcePort, 5_000, 'the inbound ssh connection');
    expect(fieldsOf(inbound)).toMatchObject({ Initiated: false, DestinationPort: sshd.port, Tool: 'sshd', SourceIp: '127.0.0.1' });

    client.kill('SIGTERM');
    await once(client, 'exit');
    const end = RemoteSessionFields.parse((await log.waitFor(
      (o) => o.category === 'remote_session' && fieldsOf(o)['Action'] === 'end' && fieldsOf(o)['SessionId'] === start.SessionId,
      10_000, 'the ssh session end')).fields);
    expect(end.User).toBe(sshd.user);
    expect(end.DurationSeconds).toBeGreaterThan(0);
    expect(end.DurationSeconds).toBeLessThan(30);
  });

  it('reports a tunnel-only login (ssh -N), which never opens a session channel', async () => {
    const { sshd, log } = ctx;
    const client = sshd.ssh('', { noChannel: true });
    const start = RemoteSessionFields.parse((await log.waitFor(
      (o) => o.category === 'remote_session' && fieldsOf(o)['Action'] === 'start' && fieldsOf(o)['LocalPort'] === sshd.port
        && !log.all.some((e) => e.category === 'remote_session' && fieldsOf(e)['Action'] === 'end' && fieldsOf(e)['SessionId'] === fieldsOf(o)['SessionId']),
      10_000, 'the tunnel session start')).fields);
    expect(start).toMatchObject({ Protocol: 'ssh', User: sshd.user, SourceIp: '127.0.0.1' });
    client.kill('SIGTERM');
    await log.waitFor((o) => o.category === 'remote_session' && fieldsOf(o)['Action'] === 'end' && fieldsOf(o)['SessionId'] === start.SessionId, 10_000, 'the tunnel session end');
  });

  it('gives a pty session its terminal, and keeps two sessions of one user apart', async () => {
    const { sshd, log } = ctx;
    const first = sshd.ssh('sleep 31', { tty: true });
    const second = sshd.ssh('sleep 32', { tty: true });
    const sleeps = await Promise.all(['sleep 31', 'sleep 32'].map((command) => log.waitFor(
      (o) => o.category === 'process_creation' && fieldsOf(o)['CommandLine'] === command, 10_000, command)));
    const ids = sleeps.map((o) => String(fieldsOf(o)['SessionId']));
    expect(ids[0]).not.toBe(ids[1]);
    for (const [i, id] of ids.entries()) {
      const start = await log.waitFor((o) => o.category === 'remote_session' && fieldsOf(o)['SessionId'] === id && fieldsOf(o)['Action'] === 'start');
      expect(fieldsOf(start)['Tty']).toMatch(/^pts\/\d+$/);
      expect(fieldsOf(sleeps[i]!)['Tty']).toBe(fieldsOf(start)['Tty']);
    }
    first.kill('SIGTERM');
    second.kill('SIGTERM');
    await Promise.all(ids.map((id) => log.waitFor((o) => o.category === 'remote_session' && fieldsOf(o)['SessionId'] === id && fieldsOf(o)['Action'] === 'end', 10_000, `end of ${id}`)));
  });
});

describe.skipIf(!available.ok)('what an SSH session leaves running (sshd with PAM)', () => {
  const ctx = sensorsBesideSshd({ usePam: true });

  it('attributes a process started after the session ended, with no sshd above it, to that session', async () => {
    const { sshd, sensors, log } = ctx;
    // The job detaches (setsid), the client logs out, and only then does the job start its sleep:
    // by then no sshd is among its ancestors.
    const client = sshd.ssh("setsid sh -c 'while [ ! -e /tmp/omw-go-$$ ]; do sleep 0.05; done; sleep 34; true' </dev/null >/dev/null 2>&1 & echo $!; read logout");
    const jobPid = Number((await new Promise<string>((resolve) => client.stdout!.once('data', (d: Buffer) => resolve(d.toString())))).trim());
    const start = await log.waitFor((o) => o.category === 'remote_session' && fieldsOf(o)['Action'] === 'start' && fieldsOf(o)['LocalPort'] === sshd.port, 10_000, 'the session start');
    const sessionId = fieldsOf(start)['SessionId'];
    client.stdin!.end('\n');
    await once(client, 'exit');
    await log.waitFor((o) => o.category === 'remote_session' && fieldsOf(o)['Action'] === 'end' && fieldsOf(o)['SessionId'] === sessionId, 10_000, 'the session end');
    const { writeFileSync, rmSync } = await import('node:fs');
    writeFileSync(`/tmp/omw-go-${jobPid}`, '');
    try {
      const sleep = await log.waitFor((o) => o.category === 'process_creation' && fieldsOf(o)['CommandLine'] === 'sleep 34', 10_000, 'the late sleep');
      expect(fieldsOf(sleep)).toMatchObject({ SessionId: sessionId, User: sshd.user });
      // It was created after the session had ended, so no live session was among its ancestors.
      const ended = log.all.findIndex((o) => o.category === 'remote_session' && fieldsOf(o)['Action'] === 'end' && fieldsOf(o)['SessionId'] === sessionId);
      expect(ended).toBeLessThan(log.all.indexOf(sleep));
      expect(sensors.sessions.registry.get(String(sessionId))).toBeUndefined();
      expect(sensors.processes.table.get(jobPid)?.auditSessionId).toBeDefined();
    } finally {
      rmSync(`/tmp/omw-go-${jobPid}`, { force: true });
      process.kill(-jobPid, 'SIGKILL');
    }
  });
});
