// bench:rules — events per second through the rules engine with the whole SigmaHQ corpus and the
// default pack loaded, on one core, beside JSON.parse of the same events (the floor: any agent must at
// least parse what it evaluates). Prints progress on stderr and one JSON line last on stdout.
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { readRuleFiles } from '../../rules/engine/files.ts';
import { loadRules, RuleEngine, type EngineEvent } from '../../rules/engine/index.ts';

const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '100000' },
    corpus: { type: 'string', default: new URL('../../../shared/corpus/sigma/rules', import.meta.url).pathname },
    rounds: { type: 'string', default: '3' },
  },
});
const EVENTS = Number(values.events);
const ROUNDS = Number(values.rounds);
const PACKS = new URL('../../rules/packs', import.meta.url).pathname;

function say(message: string): void {
  process.stderr.write(`${message}\n`);
}

/** A deterministic stream of realistic events: mostly Linux process creations, as an HMI produces. */
function makeEvents(count: number): EngineEvent[] {
  let state = 42;
  const random = () => {
    state = (state * 1_103_515_245 + 12_345) & 0x7fffffff;
    return state / 0x7fffffff;
  };
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const programs = [
    ['/usr/bin/bash', 'bash -c "systemctl status plc-gateway"'],
    ['/usr/bin/ls', 'ls -la /opt/scada/projects'],
    ['/usr/bin/python3.11', 'python3 /opt/hmi/poll_modbus.py --unit 3 --interval 500'],
    ['/usr/bin/grep', 'grep -r alarm /var/log/hmi/'],
    ['/usr/bin/cat', 'cat /etc/hmi/tags.conf'],
    ['/usr/sbin/iptables', 'iptables -L -n'],
    ['/usr/bin/ps', 'ps aux'],
    ['/usr/bin/curl', 'curl -s http://127.0.0.1:8080/health'],
    ['/usr/bin/tar', 'tar czf /backup/hmi-2026-11-28.tgz /opt/hmi'],
    ['/usr/bin/sudo', 'sudo -u scada /opt/hmi/restart.sh'],
    ['/usr/bin/vim', 'vim /opt/hmi/config/plant.yml'],
    ['/usr/bin/rm', 'rm -f /tmp/hmi-cache-1234.tmp'],
    ['/usr/bin/ssh', 'ssh engineer@10.20.0.5'],
    ['/usr/bin/base64', 'base64 /tmp/report.bin'],
  ] as const;
  const parents = ['/usr/bin/bash', '/usr/sbin/sshd', '/usr/lib/systemd/systemd', '/usr/bin/python3.11', '/usr/sbin/cron'];
  const users = ['root', 'scada', 'vendor1', 'engineer', 'operator'];
  const events: EngineEvent[] = [];
  for (let i = 0; i < count; i++) {
    const id = `0193a000-0000-7000-8000-${String(i).padStart(12, '0')}`;
    const time = new Date(Date.UTC(2026, 10, 28, 8) + i * 20).toISOString();
    const host = { id: 'bench-host', name: 'hmi-07' };
    const roll = random();
    if (roll < 0.85) {
      const [image, commandLine] = pick(programs);
      events.push({
        id, time, host, category: 'process_creation', product: 'linux', fields: {
          ProcessId: 1000 + i, Image: image, CommandLine: `${commandLine}${i % 7 === 0 ? ` --run ${i}` : ''}`,
          CurrentDirectory: '/home/vendor1', User: pick(users), ParentProcessId: 900, ParentImage: pick(parents),
          ParentCommandLine: '-bash', SessionId: i % 3 === 0 ? 'ssh-3f2a9c' : undefined, InMaintenanceWindow: i % 5 !== 0,
        },
      });
    } else if (roll < 0.95) {
      events.push({
        id, time, host, category: 'network_connection', product: 'linux', fields: {
          Image: '/usr/sbin/sshd', ProcessId: 700, User: 'root', Protocol: 'tcp', Initiated: false,
          SourceIp: `10.20.0.${Math.floor(random() * 250)}`, SourcePort: 40_000 + (i % 20_000), DestinationIp: '10.20.0.7', DestinationPort: 22, Tool: 'sshd',
        },
      });
    } else {
      events.push({
        id, time, host, category: 'remote_session', product: 'linux', fields: {
          SessionId: `ssh-${i}`, Action: i % 2 ? 'start' : 'end', Protocol: 'ssh', Tool: 'sshd', User: pick(users),
          SourceIp: `10.20.0.${Math.floor(random() * 250)}`, LocalPort: 22, InMaintenanceWindow: i % 4 !== 0, SourceApproved: true,
        },
      });
    }
  }
  return events;
}

function median(samples: number[]): number {
  const sorted = samples.toSorted((a, b) => a - b);
  return sorted[sorted.length >> 1]!;
}

const paths = [values.corpus, ...(existsSync(PACKS) ? [PACKS] : [])];
const read = readRuleFiles(paths);
const loaded = loadRules(read.sources);
say(`loaded ${loaded.rules.length} rules and ${loaded.correlations.length} correlations from ${read.sources.length} files (${loaded.errors.length} not loaded)`);
// Building an engine builds the literal automata, whose sizes are worth knowing.
const warm = new RuleEngine(loaded);
const automata = [...loaded.literals.values()].flatMap((index) => index.stats());
say(`${warm.rules.length} rules routed; literal index: ${automata.length} fields, ${automata.reduce((n, a) => n + a.tests, 0)} tests, ${automata.reduce((n, a) => n + a.states, 0)} states; largest: ${automata.toSorted((a, b) => b.states - a.states).slice(0, 4).map((a) => `${JSON.stringify(a.field)} ${a.states}×${a.classes}`).join(', ')}`);
const events = makeEvents(EVENTS);
const lines = events.map((e) => JSON.stringify(e));

const engineRates: number[] = [];
const parseRates: number[] = [];
let alerts = 0;
for (let round = 0; round < ROUNDS; round++) {
  const engine = new RuleEngine(loaded);
  let started = process.hrtime.bigint();
  alerts = 0;
  for (const event of events) alerts += engine.evaluate(event).length;
  engineRates.push(EVENTS / (Number(process.hrtime.bigint() - started) / 1e9));
  started = process.hrtime.bigint();
  let sink = 0;
  for (const line of lines) sink += (JSON.parse(line) as { fields: object }).fields ? 1 : 0;
  parseRates.push(sink / (Number(process.hrtime.bigint() - started) / 1e9));
  say(`round ${round + 1}: ${Math.round(engineRates.at(-1)!)} events/s through the engine (${alerts} alerts), ${Math.round(parseRates.at(-1)!)} JSON.parse/s`);
}
process.stdout.write(`${JSON.stringify({
  rules: loaded.rules.length + loaded.correlations.length,
  events: EVENTS,
  eventsPerSec: Math.round(median(engineRates)),
  jsonParsePerSec: Math.round(median(parseRates)),
})}\n`);
