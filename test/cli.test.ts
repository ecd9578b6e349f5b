// The agent's command line as plant IT uses it: the snapshot (readable and JSON), the event stream on
// stdout, and clear refusals of wrong flags and broken config files.
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { AlertSchema, EventSchema } from '../collector/protocol/index.ts';

const AGENT = new URL('../bin/omwatch-agent.js', import.meta.url).pathname;

function agent(args: string[], options: { uid?: number; gid?: number } = {}): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [AGENT, ...args], { encoding: 'utf8', timeout: 30_000, ...options });
}

describe('omwatch-agent snapshot', () => {
  it('--json prints one document with every section, processes carrying the promised fields', () => {
    const result = agent(['snapshot', '--json']);
    expect(result.status, result.stderr).toBe(0);
    const snapshot = JSON.parse(result.stdout) as Record<string, unknown>;
    expect(Object.keys(snapshot).sort()).toEqual(['connections', 'host', 'media', 'processes', 'sensors', 'services', 'sessions']);
    const processes = snapshot['processes'] as Array<Record<string, unknown>>;
    const self = processes.find((p) => p['pid'] === result.pid);
    expect(self).toMatchObject({ ppid: process.pid, user: 'root', image: process.execPath, commandLine: `${process.execPath} ${AGENT} snapshot --json`, sessionId: null });
    expect(Date.parse(String(self!['startTime']))).toBeGreaterThan(Date.now() - 60_000);
    const sensors = snapshot['sensors'] as Array<{ name: string; state: string; source?: string; notes?: string[] }>;
    expect(sensors.map((s) => s.name).sort()).toEqual(['connections', 'media', 'processes', 'sessions']);
    // As root, with the addon `npm install` built: every exec from the kernel's process events connector.
    const processSensor = sensors.find((s) => s.name === 'processes');
    expect(processSensor).toMatchObject({ state: 'ok', source: 'connector' });
    expect(processSensor?.notes?.join(' ')).toContain('kernel process events connector');
  });

  it('prints a readable table by default, with escape sequences from command lines made inert', () => {
    const marker = spawn('/bin/sh', ['-c', 'sleep 20', 'x\u001b[2Jhidden'], { stdio: 'ignore' });
    try {
      const result = agent(['snapshot']);
      expect(result.status, result.stderr).toBe(0);
      expect(result.stdout).toMatch(/^Host .+ \(id [0-9a-f]{32}, from /);
      for (const heading of ['Sensors', 'Remote sessions', 'Remote-access services listening', 'Removable media', 'Processes']) {
        expect(result.stdout).toContain(heading);
      }
      expect(result.stdout).toContain(`${marker.pid}`);
      expect(result.stdout).toContain('x\\x1b[2Jhidden');
      expect(result.stdout).not.toContain('\u001b');
    } finally {
      marker.kill();
    }
  });

  it('run as an ordinary user, says what it cannot see', () => {
    const result = agent(['snapshot', '--json'], { uid: 65534, gid: 65534 });
    expect(result.status, result.stderr).toBe(0);
    const snapshot = JSON.parse(result.stdout) as { host: { privileged: boolean }; processes: unknown[]; sensors: Array<{ name: string; state: string; source?: string; reason?: string; counters: Record<string, number> }> };
    expect(snapshot.host.privileged).toBe(false);
    expect(snapshot.processes.length).toBeGreaterThan(1);
    const processes = snapshot.sensors.find((s) => s.name === 'processes')!;
    expect(processes).toMatchObject({ state: 'degraded', source: 'scan' });
    expect(processes.reason).toMatch(/not root/);
    expect(processes.reason).toContain('no process events connector');
    expect(processes.counters['permissionDenied']).toBeGreaterThan(0);
    expect(snapshot.sensors.find((s) => s.name === 'connections')?.reason).toMatch(/not root/);
    expect(snapshot.sensors.find((s) => s.name === 'sessions')).toMatchObject({ state: 'degraded', reason: expect.stringMatching(/not root/) });
  });
});

describe('omwatch-agent run --stdout', () => {
  it('prints schema-valid events as JSON lines and stops cleanly on SIGTERM', async () => {
    const child = spawn(process.execPath, [AGENT, 'run', '--stdout', '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const events: Array<Record<string, unknown>> = [];
    const fields = (e: Record<string, unknown>) => e['fields'] as Record<string, unknown>;
    // A process already running when the agent starts is baseline, not news: start short ones until
    // one is reported (the first scan may or may not have happened yet).
    const stimulus = setInterval(() => spawn('/bin/sleep', ['0.3'], { stdio: 'ignore' }), 200);
    await new Promise<void>((resolve) => {
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const event = JSON.parse(line) as Record<string, unknown>;
        events.push(event);
        if (event['category'] === 'process_termination' && fields(event)['CommandLine'] === '/bin/sleep 0.3'
          && events.some((e) => e['category'] === 'process_creation' && fields(e)['ProcessId'] === fields(event)['ProcessId'])) resolve();
      });
    });
    clearInterval(stimulus);
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(0);
    // Events, and any alert the shipped rules raised meanwhile, each valid against its schema.
    for (const line of events) expect(('rule' in line ? AlertSchema : EventSchema).safeParse(line).error).toBeUndefined();
    const actions = events.filter((e) => e['category'] === 'agent').map((e) => fields(e)['Action']);
    expect(actions[0]).toBe('started');
    expect(actions.at(-1)).toBe('stopped');
    const created = events.find((e) => e['category'] === 'process_creation' && fields(e)['CommandLine'] === '/bin/sleep 0.3');
    expect(created?.['fields']).toMatchObject({ Image: '/usr/bin/sleep', ParentProcessId: process.pid, User: 'root' });
  });
});

describe('bad command lines and config files', () => {
  it('refuses an unknown flag with exit 2, naming it', () => {
    const result = agent(['snapshot', '--jsn']);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("Unknown option '--jsn'");
    expect(result.stderr).toContain('usage: omwatch-agent');
  });

  it('refuses an unknown command with exit 2', () => {
    const result = agent(['snapshto']);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("unknown command 'snapshto'");
  });

  it('refuses a config with a wrong value, naming the file, the key, what was expected and what it got', () => {
    const dir = mkdtempSync(join(tmpdir(), 'omw-config-'));
    const file = join(dir, 'agent.yml');
    writeFileSync(file, 'sensors:\n  processes:\n    scanIntervalMs: fast\n  medai: {}\n');
    const result = agent(['snapshot', '--config', file]);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(`${file}: sensors.processes.scanIntervalMs: expected number, got "fast"`);
    expect(result.stderr).toContain(`${file}: sensors: unknown key 'medai'`);
  });

  it('refuses a config that is not YAML, with the line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'omw-config-'));
    const file = join(dir, 'agent.yml');
    writeFileSync(file, 'log:\n  level: info\n  bad: [\n');
    const result = agent(['snapshot', '--config', file]);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(new RegExp(`${file}:\\d+:\\d+: not valid YAML`));
  });
});
