// A real VNC server (Debian's TigerVNC) on loopback: a client's connection is a remote session of
// protocol vnc, and a program on the session's X display belongs to it.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RemoteSessionFields } from '../collector/protocol/index.ts';
import { defaultConfig } from '../agent/config/index.ts';
import { silentLogger } from '../agent/log/index.ts';
import { createSensors, type SensorSet } from '../agent/sensors/index.ts';
import { fieldsOf, observationLog } from './helpers/observations.ts';

const XVNC = '/usr/bin/Xtigervnc';
const available = existsSync(XVNC) && process.getuid?.() === 0;
if (!available) console.warn(`skipping the VNC session test: needs ${XVNC} (Debian tigervnc-standalone-server) and root`);

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  return port;
}

describe.skipIf(!available)('VNC sessions through a real Xvnc', () => {
  const log = observationLog();
  let sensors: SensorSet;
  let xvnc: ChildProcess;
  let port: number;
  const display = `:${40 + (process.pid % 50)}`;

  beforeAll(async () => {
    sensors = createSensors({ config: defaultConfig(), hostId: 'test-host', logger: silentLogger() });
    for (const sensor of sensors.ordered) await sensor.start(log.emit);
    port = await freePort();
    xvnc = spawn(XVNC, [display, '-rfbport', String(port), '-localhost', '-SecurityTypes', 'None', '-geometry', '640x480', '-depth', '24', '-nolisten', 'tcp'], { stdio: ['ignore', 'ignore', 'pipe'] });
    // Ready when it says it listens for VNC connections on the port.
    await new Promise<void>((resolve, reject) => {
      let text = '';
      xvnc.stderr!.on('data', (chunk: Buffer) => {
        text += chunk.toString();
        if (text.includes(`port ${port}`) || /Listening for VNC connections/.test(text)) resolve();
      });
      xvnc.once('exit', (code) => reject(new Error(`Xvnc exited with ${code}: ${text}`)));
    });
  });

  afterAll(async () => {
    for (const sensor of sensors?.ordered.toReversed() ?? []) await sensor.stop();
    xvnc?.kill();
  });

  it('reports a client connection as a vnc session, attributes a program on its display, and ends it', async () => {
    const client: Socket = createConnection({ host: '127.0.0.1', port });
    const [banner] = await once(client, 'data') as [Buffer];
    expect(banner.toString()).toMatch(/^RFB 003\.00\d/);
    const start = RemoteSessionFields.parse((await log.waitFor(
      (o) => o.category === 'remote_session' && fieldsOf(o)['Action'] === 'start' && fieldsOf(o)['LocalPort'] === port,
      10_000, 'the vnc session start')).fields);
    expect(start).toMatchObject({ Protocol: 'vnc', Tool: 'vnc', SourceIp: '127.0.0.1', SourcePort: client.localPort, ProcessId: xvnc.pid, User: 'root' });
    // A program started on the session's display (as a VNC user's desktop would start it).
    const program = spawn('/bin/sleep', ['3.141'], { env: { ...process.env, DISPLAY: display }, stdio: 'ignore' });
    const created = await log.waitFor((o) => o.category === 'process_creation' && fieldsOf(o)['ProcessId'] === program.pid, 5_000, 'the program');
    expect(fieldsOf(created)['SessionId']).toBe(start.SessionId);
    program.kill();
    client.destroy();
    const end = await log.waitFor((o) => o.category === 'remote_session' && fieldsOf(o)['Action'] === 'end' && fieldsOf(o)['SessionId'] === start.SessionId, 10_000, 'the vnc session end');
    expect(fieldsOf(end)['DurationSeconds']).toBeGreaterThanOrEqual(0);
  });
});
