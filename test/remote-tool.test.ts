// A remote-access tool is recognised by its process and its ports: a copy of a binary named
// `anydesk` listening on 7070, and a client connecting to it, as the tool's session.
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetworkConnectionFields, RemoteSessionFields } from '../collector/protocol/index.ts';
import { defaultConfig } from '../agent/config/index.ts';
import { silentLogger } from '../agent/log/index.ts';
import { createSensors, type SensorSet } from '../agent/sensors/index.ts';
import { fieldsOf, observationLog } from './helpers/observations.ts';

const NODE = realpathSync(process.execPath);

/** Starts a copy of node named `name` that listens on 127.0.0.1:`port` and says `ready`. */
async function fakeTool(dir: string, name: string, port: number): Promise<ChildProcess> {
  const binary = join(dir, name);
  copyFileSync(NODE, binary);
  // Like a real tool, it starts a helper for each connection it takes.
  const script = `require('net').createServer(() => require('child_process').spawn('/bin/sleep', ['7.${port}'], { stdio: 'ignore' }))`
    + `.listen(${port}, '127.0.0.1', () => console.log('ready'))`;
  const child = spawn(binary, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`${name} exited with ${code} before listening on ${port}`)));
  });
  return child;
}

describe('remote-access tools by process name and port', () => {
  let dir: string;
  let sensors: SensorSet;
  let anydesk: ChildProcess;
  let renamed: ChildProcess;
  const log = observationLog();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'omw-tool-'));
    sensors = createSensors({ config: defaultConfig(), hostId: 'test-host', logger: silentLogger() });
    for (const sensor of sensors.ordered) await sensor.start(log.emit);
    anydesk = await fakeTool(dir, 'anydesk', 7070);
    // A tool renamed to hide it is still caught by the catalogue's port.
    renamed = await fakeTool(dir, 'helper-svc', 5938);
  });

  afterAll(async () => {
    for (const sensor of sensors.ordered.toReversed()) await sensor.stop();
    anydesk?.kill();
    renamed?.kill();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reports the anydesk copy listening on 7070 as a remote-access tool, by process', async () => {
    await log.waitFor((o) => o.category === 'process_creation' && fieldsOf(o)['ProcessId'] === anydesk.pid);
    const view = sensors.connections.poll();
    const service = view.services.find((s) => s.port === 7070);
    expect(service).toMatchObject({ tool: { tool: 'anydesk', protocol: 'anydesk' }, matchedBy: 'process', owner: { pid: anydesk.pid, image: join(dir, 'anydesk') } });
    const hidden = view.services.find((s) => s.port === 5938);
    expect(hidden).toMatchObject({ tool: { tool: 'teamviewer' }, matchedBy: 'port', owner: { pid: renamed.pid } });
  });

  it('turns an inbound connection to it into a session and a network_connection, and ends it', async () => {
    const client: Socket = createConnection({ host: '127.0.0.1', port: 7070 });
    await once(client, 'connect');
    const start = await log.waitFor((o) => o.category === 'remote_session' && fieldsOf(o)['Action'] === 'start' && fieldsOf(o)['Tool'] === 'anydesk', 5_000, 'anydesk session start');
    const session = RemoteSessionFields.parse(start.fields);
    expect(session).toMatchObject({ Protocol: 'anydesk', SourceIp: '127.0.0.1', SourcePort: client.localPort, LocalPort: 7070, ProcessId: anydesk.pid, User: 'root' });
    // The helper the tool started for the connection belongs to the session from its first event.
    const helper = await log.waitFor((o) => o.category === 'process_creation' && fieldsOf(o)['CommandLine'] === '/bin/sleep 7.7070', 5_000, 'the helper');
    expect(fieldsOf(helper)).toMatchObject({ ParentProcessId: anydesk.pid, SessionId: session.SessionId });
    const connection = NetworkConnectionFields.parse((await log.waitFor((o) => o.category === 'network_connection' && fieldsOf(o)['DestinationPort'] === 7070)).fields);
    expect(connection).toMatchObject({ Initiated: false, SourceIp: '127.0.0.1', SourcePort: client.localPort, Tool: 'anydesk', ProcessId: anydesk.pid, Image: join(dir, 'anydesk') });
    client.destroy();
    const end = await log.waitFor((o) => o.category === 'remote_session' && fieldsOf(o)['Action'] === 'end' && fieldsOf(o)['SessionId'] === session.SessionId, 5_000, 'anydesk session end');
    expect(fieldsOf(end)['DurationSeconds']).toBeGreaterThanOrEqual(0);
  });

  it('ignores a process that merely titles itself like an SSH session', async () => {
    // Any local user can do this; only sshd's root-owned monitor can be a real session's parent.
    const fake = spawn('/usr/bin/perl', ['-e', '$0 = "sshd: root\\@pts/9"; sleep 30'], { stdio: 'ignore' });
    await log.waitFor((o) => o.category === 'process_creation' && fieldsOf(o)['ProcessId'] === fake.pid, 5_000, 'the fake');
    // A later process living past the re-check of young processes proves the title was read; still
    // no session from it.
    const marker = spawn('/bin/sleep', ['0.5']);
    await log.waitFor((o) => o.category === 'process_termination' && fieldsOf(o)['ProcessId'] === marker.pid, 5_000, 'a later scan');
    expect(log.all.some((o) => o.category === 'remote_session' && fieldsOf(o)['ProcessId'] === fake.pid)).toBe(false);
    expect(sensors.sessions.health().notes?.join(' ')).toMatch(/titled like an SSH session/);
    fake.kill();
  });
});
