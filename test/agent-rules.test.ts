// The running agent judging live activity: a real SSH session against the shipped pack and a policy,
// and rules reloaded on change, where a broken edit keeps the previous set.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlertSchema } from '../collector/protocol/index.ts';
import { waitLog } from './helpers/observations.ts';
import { sshdAvailable, startSshd, type SshdHandle } from './helpers/sshd.ts';

const AGENT = new URL('../bin/omwatch-agent.js', import.meta.url).pathname;
const PACKS = new URL('../rules/packs', import.meta.url).pathname;
type Line = Record<string, unknown>;

/** A child's output stream, one JSON value a line, as a log a test can wait on. */
function lines(stream: NodeJS.ReadableStream) {
  const log = waitLog<Line>();
  createInterface({ input: stream }).on('line', (text) => {
    try {
      log.emit(JSON.parse(text) as Line);
    } catch {
      // Not JSON (a stack trace, say): the assertions will show what is missing.
    }
  });
  return { seen: log.all, next: (test: (l: Line) => boolean, what: string, timeoutMs = 15_000) => log.waitFor(test, timeoutMs, what) };
}

const available = sshdAvailable();

describe.skipIf(!available.ok)('the agent with rules and a policy', () => {
  let sshd: SshdHandle;
  let agent: ChildProcess;
  let out: ReturnType<typeof lines>;
  let err: ReturnType<typeof lines>;
  const dir = mkdtempSync(join(tmpdir(), 'omw-agent-rules-'));
  const extra = join(dir, 'rules');

  beforeAll(async () => {
    sshd = await startSshd();
    const { mkdirSync } = await import('node:fs');
    mkdirSync(extra);
    // A policy that approves none of the test's accounts and opens no window.
    writeFileSync(join(dir, 'policy.yml'), 'approvedAccounts: [vendor1]\napprovedTools: [sshd]\nticket: {required: false}\n');
    agent = spawn(process.execPath, [AGENT, 'run', '--stdout', '--rules', PACKS, '--rules', extra, '--policy', join(dir, 'policy.yml')], { stdio: ['ignore', 'pipe', 'pipe'] });
    out = lines(agent.stdout!);
    err = lines(agent.stderr!);
    await out.next((l) => (l['fields'] as Line | undefined)?.['Action'] === 'rules_loaded', 'rules loaded');
  });

  afterAll(async () => {
    agent?.kill('SIGTERM');
    await sshd?.stop();
  });

  it('raises the pack\'s alerts for an SSH session by an unapproved account, outside any window', async () => {
    const client = sshd.ssh('sleep 20');
    const byTitle = (title: string) => (l: Line) => (l['rule'] as Line | undefined)?.['title'] === title;
    const account = await out.next(byTitle('Remote Session by an Unapproved Account'), 'the account alert');
    expect(account).toMatchObject({ rule: { level: 'high', author: 'omwatch', id: '6f1c1d0e-6b5e-4d2a-9b2f-0a1e5c7d9b03' }, host: { name: expect.any(String) } });
    expect(AlertSchema.safeParse(account).error).toBeUndefined();
    expect(String(account['summary'])).toContain(`User=${sshd.user}`);
    const session = out.seen.find((l) => l['category'] === 'remote_session' && (l['fields'] as Line)['Action'] === 'start' && (l['fields'] as Line)['LocalPort'] === sshd.port)!;
    expect(session['fields']).toMatchObject({ AccountApproved: false, ToolApproved: true, InMaintenanceWindow: false });
    expect(account['sessionId']).toBe((session['fields'] as Line)['SessionId']);
    expect(account['eventIds']).toEqual([session['id']]);
    await out.next(byTitle('Remote Session Outside a Maintenance Window'), 'the window alert');
    client.kill('SIGTERM');
  });

  it('reloads rules on change, and keeps the previous set when an edit is broken', async () => {
    const loadedBefore = out.seen.filter((l) => (l['fields'] as Line | undefined)?.['Action'] === 'rules_loaded').length;
    writeFileSync(join(extra, 'broken.yml'), 'title: broken\nlogsource: {category: process_creation}\ndetection:\n  sel: {Image|endwith: x}\n  condition: sel\n');
    const refused = await err.next((l) => String(l['msg']).startsWith('rule reload refused'), 'the refusal in the log');
    expect(refused).toMatchObject({ code: 'RULE_BAD_MODIFIER', file: join(extra, 'broken.yml'), line: 4 });
    writeFileSync(join(extra, 'broken.yml'), 'title: Reload Marker\nid: reload-marker\nauthor: test\nlogsource: {category: process_creation, product: linux}\ndetection:\n  sel: {CommandLine|contains: omw-reload-marker}\n  condition: sel\n');
    await out.next((l) => (l['fields'] as Line | undefined)?.['Action'] === 'rules_loaded' && out.seen.filter((x) => (x['fields'] as Line | undefined)?.['Action'] === 'rules_loaded').length > loadedBefore, 'the reload');
    const marker = spawn('/bin/sh', ['-c', 'sleep 0.5; true', 'omw-reload-marker'], { stdio: 'ignore' });
    const alert = await out.next((l) => (l['rule'] as Line | undefined)?.['id'] === 'reload-marker', 'an alert from the reloaded rule');
    expect(alert['summary']).toContain('omw-reload-marker');
    marker.kill();
  });
});
