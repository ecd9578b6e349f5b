// bench:scan — CPU cost of the process sensor's /proc scan with 1,000 extra processes running, beside
// `ps -eo pid,ppid,user,lstart,args` and systeminformation's si.processes() on the same table.
// Prints progress on stderr and one JSON line last on stdout.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import si from 'systeminformation';
import { ProcessTable } from '../../agent/sensors/processes/table.ts';

const { values } = parseArgs({
  options: {
    procs: { type: 'string', default: '1000' },
    'steady-scans': { type: 'string', default: '400' },
    'new-rounds': { type: 'string', default: '15' },
    'ps-runs': { type: 'string', default: '20' },
    'si-runs': { type: 'string', default: '3' },
  },
});
const EXTRA = Number(values.procs);
const STEADY_SCANS = Number(values['steady-scans']);
const NEW_ROUNDS = Number(values['new-rounds']);
const PS_RUNS = Number(values['ps-runs']);
const SI_RUNS = Number(values['si-runs']);

function say(message: string): void {
  process.stderr.write(`${message}\n`);
}

function median(samples: number[]): number {
  const sorted = samples.toSorted((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function round(value: number, digits = 3): number {
  return Number(value.toFixed(digits));
}

function cpuMs(since: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1000;
}

/** CPU time of this process's waited-for children, from /proc/self/stat (cutime + cstime, in ticks). */
function childrenCpuMs(): number {
  const text = readFileSync('/proc/self/stat', 'utf8');
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[13]) + Number(fields[14])) * 10;
}

/** Starts `count` sleeping processes under one shell; resolves once all are running. */
async function sleepers(count: number): Promise<ChildProcess> {
  const shell = spawn('/bin/sh', ['-c', `i=0; while [ $i -lt ${count} ]; do sleep 3600 & i=$((i+1)); done; echo ready; wait`], {
    stdio: ['ignore', 'pipe', 'inherit'],
    detached: true,
  });
  await new Promise<void>((resolve, reject) => {
    shell.stdout!.once('data', () => resolve());
    shell.once('exit', (code) => reject(new Error(`sleeper shell exited with ${code}`)));
  });
  return shell;
}

function killGroup(shell: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    shell.once('exit', () => resolve());
    process.kill(-shell.pid!, 'SIGKILL');
  });
}

async function main(): Promise<void> {
  say(`starting ${EXTRA} extra processes`);
  const crowd = await sleepers(EXTRA);
  try {
    const table = new ProcessTable();
    table.scan();
    table.scan();
    const procs = table.size;
    say(`process table: ${procs} entries`);

    // The kernel may account CPU time in ticks, so one sub-millisecond scan cannot be timed alone:
    // scans are timed in batches, and the median is taken over the batches' per-scan means.
    const steady: number[] = [];
    const batch = 20;
    for (let b = 0; b < STEADY_SCANS / batch; b++) {
      const before = process.cpuUsage();
      let created = 0;
      for (let i = 0; i < batch; i++) created += table.scan().created.length;
      if (created <= 5) steady.push(cpuMs(before) / batch); // else something else on the host started processes
    }
    say(`steady-state scan: median ${round(median(steady))} ms CPU per scan, over ${steady.length} batches of ${batch} scans`);
    const withNew: number[] = [];
    for (let attempt = 0; attempt < NEW_ROUNDS; attempt++) {
      const newcomers = await sleepers(50);
      const before = process.cpuUsage();
      const result = table.scan();
      withNew.push(cpuMs(before));
      if (result.created.length < 50) throw new Error(`expected at least 50 new processes, the scan found ${result.created.length}`);
      await killGroup(newcomers);
      table.scan();
    }
    say(`scan with 50 new processes: median ${round(median(withNew))} ms CPU over ${withNew.length} rounds`);

    const psWall: number[] = [];
    const psBefore = childrenCpuMs();
    for (let i = 0; i < PS_RUNS; i++) {
      const started = process.hrtime.bigint();
      const ps = spawnSync('ps', ['-eo', 'pid,ppid,user,lstart,args'], { maxBuffer: 64 * 1024 * 1024 });
      psWall.push(Number(process.hrtime.bigint() - started) / 1e6);
      if (ps.status !== 0) throw new Error(`ps failed: ${ps.stderr}`);
    }
    const psMs = (childrenCpuMs() - psBefore) / PS_RUNS;
    say(`ps -eo pid,ppid,user,lstart,args: ${round(psMs)} ms CPU per run (mean of ${PS_RUNS}, 10 ms tick resolution), median wall ${round(median(psWall))} ms`);

    const siCpu: number[] = [];
    for (let i = 0; i < SI_RUNS; i++) {
      // si.processes() answers from a cache for 500 ms after a call; wait it out so each run is real.
      await new Promise((resolve) => setTimeout(resolve, 600));
      const before = process.cpuUsage();
      const childBefore = childrenCpuMs();
      await si.processes();
      siCpu.push(cpuMs(before) + (childrenCpuMs() - childBefore));
    }
    say(`si.processes(): median ${round(median(siCpu))} ms CPU (own and its children) over ${SI_RUNS} runs`);

    const result = {
      procs,
      steadyScanMs: round(median(steady)),
      newProcs50ScanMs: round(median(withNew)),
      psMs: round(psMs),
      siProcessesMs: round(median(siCpu)),
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await killGroup(crowd);
  }
}

await main();
