// The prefilter may only skip work, never a match: over the SigmaHQ corpus and the default pack, an
// engine that evaluates every routed rule and one that skips rules whose needed literals are absent must
// raise exactly the same alerts, on events built to hit the rules' own literals.
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { readRuleFiles } from './files.ts';
import { loadRules, RuleEngine, type EngineEvent } from './index.ts';

const CORPUS = new URL('../../../shared/corpus/sigma/rules', import.meta.url).pathname;
const PACKS = new URL('../packs', import.meta.url).pathname;

/** Pieces of real rule values, so the events hit many rules and many near misses. */
const FRAGMENTS = [
  '/bin/bash', '/usr/bin/python3', 'base64 -d', '| bash ', 'history -c', 'iptables -F', '/dev/tcp/', 'nc -e /bin/sh', 'chmod 4777 ',
  'chown root', 'curl -T ', '/var/log/', 'rm -rf', 'systemctl stop auditd', 'vssadmin delete shadows', 'http.server', 'socket', 'pty.spawn',
  'wget ', ' -O- | sh', '/tmp/.x', 'crontab -l', 'authorized_keys', 'useradd', 'sudo -i', 'openssl enc -aes', 'APT::Update::Pre-Invoke::=',
  '-W "41 42 43"', 'import os;os.system', 'echo cHduZWQ= | base64 -d | sh', 'xspy -display ', 'ghost_x -v ', 'setenforce 0',
];

function eventsFor(count: number): EngineEvent[] {
  let state = 7;
  const next = () => (state = (state * 1_103_515_245 + 12_345) & 0x7fffffff) / 0x7fffffff;
  const pick = () => FRAGMENTS[Math.floor(next() * FRAGMENTS.length)]!;
  const images = ['/usr/bin/bash', '/usr/bin/python3.11', '/usr/bin/nc', '/usr/bin/curl', '/usr/bin/apt', '/usr/sbin/iptables', '/usr/bin/rm', '/usr/bin/pnscan', 'C:\\Windows\\System32\\vssadmin.exe'];
  return Array.from({ length: count }, (_, i) => ({
    id: `e${i}`, time: new Date(Date.UTC(2026, 10, 28) + i * 1000).toISOString(),
    category: i % 10 === 0 ? 'network_connection' : 'process_creation', product: i % 7 === 0 ? 'windows' : 'linux',
    fields: {
      Image: images[Math.floor(next() * images.length)], CommandLine: `${pick()} ${pick()} ${pick()}`, ParentImage: images[Math.floor(next() * images.length)],
      User: next() < 0.5 ? 'root' : 'vendor1', Initiated: next() < 0.5, DestinationPort: 4444, SessionId: next() < 0.5 ? 'ssh-1' : undefined,
    },
  }));
}

describe.skipIf(!existsSync(CORPUS))('the literal prefilter', () => {
  it('raises exactly the alerts of a full evaluation', () => {
    const loaded = loadRules(readRuleFiles([CORPUS, PACKS]).sources);
    const fast = new RuleEngine(loaded);
    const full = new RuleEngine(loaded, { prefilter: false });
    let alerts = 0;
    for (const event of eventsFor(3_000)) {
      const expected = full.evaluate(event).map((a) => a.rule.id);
      expect(fast.evaluate(event).map((a) => a.rule.id), event.id).toEqual(expected);
      alerts += expected.length;
    }
    // The events must exercise the rules for the comparison to mean anything.
    expect(alerts).toBeGreaterThan(1_000);
  });
});
