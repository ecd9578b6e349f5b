// bench:exec — process capture by the kernel's process events connector beside the /proc scan, on the
// same bursts in the same run: two agents' process sensors (one per source, each in its own process,
// so each one's CPU is its own) watch bursts of processes living 1, 5, 50 and 250 ms. For each source:
// the share of execs seen, the share seen with their command line, and CPU time per 1,000 execs.
// Beside them, the floor: the least a listener can do (exec-floor.c), its CPU per 1,000 execs.
// Needs root (the connector). Prints progress on stderr and one JSON line last on stdout.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { silentLogger } from '../../agent/log/index.ts';
import { createProcessSensor } from '../../agent/sensors/processes/index.ts';

const { values } = parseArgs({
  options: {
    role: { type: 'string' },
    'count-1ms': { type: 'string', default: '1000' },
    'count-5ms': { type: 'string', default: '1000' },
    'count-50ms': { type: 'string', default: '400' },
    'count-250ms': { type: 'string', default: '120' },
  },
});

function say(message: string): void {
  process.stderr.write(`${message}\n`);
}

function round(value: number, digits = 2): number {
  return Number(value.toFixed(digits));
}

/** What one role reports: its CPU over the bursts and every process_creation it saw. */
interface Report {
  source: string;
  cpuMs: number;
  /** Of cpuMs, the addon's reader thread's (it reads /proc at each exec). */
  readerCpuMs: number;
  /** [ProcessId, ParentProcessId, CommandLine] of each process_creation. */
  seen: Array<[number, number, string]>;
  counters: Record<string, number>;
}

/** CPU time of this process's thread named `name`, in ms (from the scheduler's own count). */
function threadCpuMs(name: string): number {
  let ns = 0;
  for (const task of readdirSync('/proc/self/task')) {
    if (readFileSync(`/proc/self/task/${task}/comm`, 'utf8').trim() === name) ns += Number(readFileSync(`/proc/self/task/${task}/schedstat`, 'utf8').split(' ')[0]);
  }
  return ns / 1e6;
}

/** A role: one process sensor in this process, answering `start` (CPU from now) and `report` on stdin. */
async function runRole(role: string): Promise<void> {
  const seen: Array<[number, number, string]> = [];
  const sensor = createProcessSensor({ hostId: 'bench', logger: silentLogger(), source: role === 'scan' ? 'scan' : 'auto' });
  await sensor.start((o) => {
    if (o.category !== 'process_creation') return;
    const fields = o.fields as { ProcessId: number; ParentProcessId: number; CommandLine: string };
    seen.push([fields.ProcessId, fields.ParentProcessId, fields.CommandLine]);
  });
  let since = process.cpuUsage();
  let readerSince = threadCpuMs('omw-proc-conn');
  process.stdout.write(`${JSON.stringify({ ready: sensor.source })}\n`);
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === 'start') {
      since = process.cpuUsage();
      readerSince = threadCpuMs('omw-proc-conn');
      process.stdout.write('started\n');
    } else if (line === 'report') {
      const used = process.cpuUsage(since);
      const report: Report = {
        source: sensor.source, cpuMs: (used.user + used.system) / 1000, readerCpuMs: threadCpuMs('omw-proc-conn') - readerSince, seen, counters: sensor.health().counters,
      };
      await sensor.stop();
      process.stdin.destroy();
      process.stdout.write(`${JSON.stringify(report)}\n`);
      return;
    }
  }
}

interface Agent {
  child: ChildProcess;
  next(): Promise<string>;
  send(line: string): void;
}

async function startAgent(role: string): Promise<Agent> {
  const tsx = new URL('../../node_modules/.bin/tsx', import.meta.url).pathname;
  const child = spawn(tsx, [new URL(import.meta.url).pathname, '--role', role], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async () => {
    const { value, done } = await lines.next();
    if (done) throw new Error(`the ${role} agent exited early`);
    return value as string;
  };
  const ready = JSON.parse(await next()) as { ready: string };
  if (ready.ready !== role) throw new Error(`the ${role} agent runs the ${ready.ready} source${role === 'connector' ? ': run as root, with the addon built (npm run install)' : ''}`);
  return { child, next, send: (line) => child.stdin!.write(`${line}\n`) };
}

/**
 * The floor beside the agents: scripts/bench/exec-floor.c, the least a listener can do (a blocking
 * recv per message, the command line read at each exec). Undefined where there is no C compiler.
 */
async function startFloor(): Promise<{ finish(): Promise<{ execs: number; withCommandLine: number; cpuMs: number }> } | undefined> {
  const dir = mkdtempSync(join(tmpdir(), 'omw-exec-floor-'));
  const binary = join(dir, 'exec-floor');
  const built = spawnSync('cc', ['-O2', '-o', binary, new URL('./exec-floor.c', import.meta.url).pathname], { encoding: 'utf8' });
  if (built.status !== 0) {
    say(`no floor listener: cc failed (${built.error?.message ?? built.stderr.trim()})`);
    rmSync(dir, { recursive: true, force: true });
    return undefined;
  }
  const child = spawn(binary, [], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const first = await lines.next();
  if (first.value !== 'ready') throw new Error(`the floor listener did not start: ${String(first.value)}`);
  return {
    async finish() {
      child.kill('SIGTERM');
      const last = await lines.next();
      await once(child, 'exit');
      rmSync(dir, { recursive: true, force: true });
      return JSON.parse(String(last.value)) as { execs: number; withCommandLine: number; cpuMs: number };
    },
  };
}

interface Phase { name: string; lifeMs: number; seconds: string; count: number; streams: number }

/** Runs `count` processes living `seconds` each, `streams` at a time; the launchers' pids. */
async function runPhase({ seconds, count, streams }: Phase): Promise<number[]> {
  const each = Math.ceil(count / streams);
  const launchers = Array.from({ length: streams }, () => spawn('/bin/sh', ['-c', `i=0; while [ $i -lt ${each} ]; do /bin/sleep ${seconds}; i=$((i+1)); done`], { stdio: 'ignore' }));
  await Promise.all(launchers.map((launcher) => once(launcher, 'exit')));
  return launchers.map((launcher) => launcher.pid!);
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench:exec needs root: the process events connector is root\'s');
  const phases: Phase[] = [
    { name: '1ms', lifeMs: 1, seconds: '0.001', count: Number(values['count-1ms']), streams: 1 },
    { name: '5ms', lifeMs: 5, seconds: '0.005', count: Number(values['count-5ms']), streams: 1 },
    { name: '50ms', lifeMs: 50, seconds: '0.05', count: Number(values['count-50ms']), streams: 8 },
    { name: '250ms', lifeMs: 250, seconds: '0.25', count: Number(values['count-250ms']), streams: 12 },
  ];
  for (const phase of phases) phase.count = Math.ceil(phase.count / phase.streams) * phase.streams;
  say('starting two agents: connector source, /proc scan source (100 ms)');
  const agents = { connector: await startAgent('connector'), scan: await startAgent('scan') };
  const floor = await startFloor();
  for (const agent of Object.values(agents)) {
    agent.send('start');
    await agent.next();
  }
  const launchersOf = new Map<string, Set<number>>();
  for (const phase of phases) {
    const started = Date.now();
    launchersOf.set(phase.name, new Set(await runPhase(phase)));
    say(`burst of ${phase.count} processes living ${phase.lifeMs} ms: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
  // Time for the last batch (100 ms) and the last scan (100 ms) to be taken in.
  await new Promise((resolve) => setTimeout(resolve, 500));
  const floorReport = await floor?.finish();
  const reports: Record<string, Report> = {};
  for (const [role, agent] of Object.entries(agents)) {
    const exited = once(agent.child, 'exit');
    agent.send('report');
    reports[role] = JSON.parse(await agent.next()) as Report;
    agent.child.stdin!.end();
    await exited;
  }
  const execs = phases.reduce((sum, phase) => sum + phase.count, 0);
  const measure = (report: Report, phase: Phase) => {
    const launchers = launchersOf.get(phase.name)!;
    const expected = `/bin/sleep ${phase.seconds}`;
    // A process is counted once, however many times it was reported (the scan reports a fork it
    // saw before its exec, and the exec again).
    const ofPhase = report.seen.filter(([, ppid]) => launchers.has(ppid));
    const seen = new Set(ofPhase.map(([pid]) => pid));
    const withCommandLine = new Set(ofPhase.filter(([, , commandLine]) => commandLine === expected).map(([pid]) => pid));
    return { seenPct: (100 * seen.size) / phase.count, cmdlinePct: (100 * withCommandLine.size) / phase.count };
  };
  const rows: Record<string, Record<string, { seenPct: number; cmdlinePct: number }>> = {};
  for (const [role, report] of Object.entries(reports)) {
    rows[role] = {};
    for (const phase of phases) {
      const { seenPct, cmdlinePct } = measure(report, phase);
      rows[role]![phase.name] = { seenPct, cmdlinePct };
      say(`${role.padEnd(9)} ${phase.name.padStart(5)}: ${round(seenPct, 1)}% seen, ${round(cmdlinePct, 1)}% with command line`);
    }
    say(`${role.padEnd(9)} CPU: ${round(report.cpuMs, 1)} ms over ${execs} execs = ${round((1000 * report.cpuMs) / execs, 1)} ms per 1,000 execs${report.source === 'connector' ? ` (the addon's reader thread ${round((1000 * report.readerCpuMs) / execs, 1)}, the rest Node)` : ''}`);
  }
  if (floorReport) {
    say(`floor     CPU: ${floorReport.cpuMs} ms over ${floorReport.execs} execs (every exec on the host) = ${round((1000 * floorReport.cpuMs) / floorReport.execs, 1)} ms per 1,000 execs; ${round((100 * floorReport.withCommandLine) / floorReport.execs, 1)}% with command line`);
  }
  const connector = reports['connector']!;
  const c = connector.counters;
  say(`connector counters: execs ${c['execs']}, exited before read ${c['exitedBeforeRead']}, overflows ${c['overflows']}, queue dropped ${c['queueDropped']}, batches ${c['batches']}`);
  const all = (role: string, key: 'seenPct' | 'cmdlinePct', names: string[]) => {
    const total = phases.filter((p) => names.includes(p.name)).reduce((sum, p) => sum + p.count, 0);
    return phases.filter((p) => names.includes(p.name)).reduce((sum, p) => sum + (rows[role]![p.name]![key] * p.count) / total, 0);
  };
  const result = {
    execs,
    seenPct: round(all('connector', 'seenPct', phases.map((p) => p.name))),
    cmdline1msPct: round(rows['connector']!['1ms']!.cmdlinePct),
    cmdline5msPct: round(all('connector', 'cmdlinePct', ['5ms', '50ms', '250ms'])),
    cpuMsPer1000: round((1000 * connector.cpuMs) / execs, 1),
    scanSeenPct250ms: round(rows['scan']!['250ms']!.seenPct),
    floorCpuMsPer1000: floorReport ? round((1000 * floorReport.cpuMs) / floorReport.execs, 1) : null,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

if (values.role) await runRole(values.role);
else await main();
