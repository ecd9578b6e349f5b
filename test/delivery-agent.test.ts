// The real agent end to end: enrolled by the CLI, started on a corrupt outbox (set aside and reported),
// its sensors' events and a rule's alert reach the collector, the alert reaches `tail`, and SIGTERM
// stops it cleanly with everything delivered.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AGENT_BIN, cli, COLLECTOR_BIN, createToken, freePort, start, startCollector, until } from './helpers/delivery.ts';

const RULE = `title: E2E marker
id: 5b0e2c1a-0000-4000-8000-00000000e2e1
status: test
author: omwatch tests
level: high
logsource:
    category: process_creation
    product: linux
detection:
    selection:
        CommandLine|contains: omwatch-e2e-marker
    condition: selection
`;

interface Line {
  record: { category?: string; fields?: Record<string, unknown>; rule?: { title: string }; stream: string };
}

describe('omwatch-agent run --data', () => {
  it('delivers events and alerts, reports a corrupt outbox, and stops cleanly', async () => {
    const root = mkdtempSync(join(tmpdir(), 'omwatch-e2e-'));
    const collectorData = join(root, 'collector');
    const agentData = join(root, 'agent');
    const collector = await startCollector(collectorData, await freePort());
    const tail = start([process.execPath, COLLECTOR_BIN, 'tail', '--url', collector.url, '--token', createToken(collectorData, 'analyst'), '--json']);
    let agent: ReturnType<typeof start> | undefined;
    try {
      const enrolled = cli(AGENT_BIN, ['enroll', '--collector', collector.url, '--token', createToken(collectorData, 'enroll'), '--data', agentData, '--name', 'e2e']);
      expect(enrolled.status, enrolled.stderr).toBe(0);
      writeFileSync(join(agentData, 'outbox.db'), 'this is not an SQLite database, just bytes a crash could leave\n'.repeat(100));
      const rules = join(root, 'rule.yml');
      writeFileSync(rules, RULE);

      agent = start([process.execPath, AGENT_BIN, 'run', '--data', agentData, '--rules', rules, '--log-level', 'info'], {}, { searchStderr: true });
      await agent.waitLine(/"msg":"agent running"/);
      // A process whose command line the rule matches, started after the agent's first scan.
      const marked = spawn('/bin/sh', ['-c', 'sleep 3; : omwatch-e2e-marker'], { stdio: 'ignore' });
      const alert = await tail.waitLine(/"E2E marker"/, 30_000);
      expect(JSON.parse(alert.input!)).toMatchObject({ type: 'alert', alert: { rule: { title: 'E2E marker', author: 'omwatch tests', level: 'high' } } });
      marked.kill();

      agent.child.kill('SIGTERM');
      expect((await agent.exited).code).toBe(0);

      const files = readdirSync(agentData);
      expect(files.some((f) => f.startsWith('outbox.db.corrupt-')), files.join(', ')).toBe(true);
      expect(existsSync(join(agentData, 'outbox.db'))).toBe(true);

      const exported = cli(COLLECTOR_BIN, ['export', '--data', collectorData]);
      expect(exported.status, exported.stderr).toBe(0);
      const lines = exported.stdout.trim().split('\n').map((l) => JSON.parse(l) as Line).filter((l) => l.record);
      const facts = lines.filter((l) => l.record.category === 'agent').map((l) => l.record.fields!['Action']);
      // The new stream begins by saying the old file was set aside, and ends with the clean stop.
      expect(facts[0]).toBe('outbox_reset');
      expect(facts).toContain('started');
      expect(facts.at(-1)).toBe('stopped');
      expect(lines.some((l) => l.record.category === 'process_creation')).toBe(true);
      expect(lines.some((l) => l.record.rule?.title === 'E2E marker')).toBe(true);
      expect(cli(COLLECTOR_BIN, ['verify', '--data', collectorData]).status).toBe(0);
    } finally {
      agent?.child.kill('SIGKILL');
      tail.child.kill('SIGKILL');
      collector.child.kill('SIGKILL');
    }
  }, 120_000);

  it('npm start: a collector and an enrolled agent on this host, an analyst token, and a clean stop', async () => {
    const data = mkdtempSync(join(tmpdir(), 'omwatch-start-'));
    const npmStart = start([process.execPath, '--import', 'tsx', new URL('../scripts/start.ts', import.meta.url).pathname], { OMWATCH_DATA: data, OMWATCH_PORT: String(await freePort()) });
    try {
      const dashboard = (await npmStart.waitLine(/^\s+dashboard\s+(\S+)/))[1]!;
      const url = (await npmStart.waitLine(/^\s+collector\s+(\S+)/))[1]!;
      const token = (await npmStart.waitLine(/^\s+analyst token (\S+)/))[1]!;
      // The token works for the live feed, and the agent delivers: its start is stored.
      const tail = start([process.execPath, COLLECTOR_BIN, 'tail', '--url', url, '--token', token], {}, { searchStderr: true });
      await tail.waitLine(/connected to/);
      await until('the agent to deliver its first records', () => {
        const out = cli(COLLECTOR_BIN, ['export', '--data', join(data, 'collector')]).stdout;
        return out.includes('"Action":"started"');
      });
      // The printed dashboard is served, and the token logs in to it.
      const page = await fetch(dashboard);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toMatch(/text\/html/);
      const login = await fetch(`${url}/api/v1/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token }) });
      expect(await login.json()).toMatchObject({ role: 'analyst' });
      tail.child.kill('SIGTERM');
      npmStart.child.kill('SIGINT');
      expect((await npmStart.exited).code).toBe(0);
      expect(cli(COLLECTOR_BIN, ['verify', '--data', join(data, 'collector')]).status).toBe(0);
    } finally {
      npmStart.child.kill('SIGKILL');
    }
  }, 90_000);
});
