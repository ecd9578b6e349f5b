// bench:pty — the recorded shell's cost to the user: throughput of 50 MB of output through it, beside
// util-linux `script`, `tlog-rec` and a bare node-pty, and the latency it adds to a key's echo. Each
// variant runs in an outer pty, as the user's terminal. Prints progress on stderr and one JSON line last;
// exits 1 if a variant lost output. Env: OMWATCH_BENCH_MB (50), OMWATCH_BENCH_RUNS (3), OMWATCH_BENCH_ECHO_SAMPLES (1000).
import { spawn as spawnChild, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, watch, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import Database from 'better-sqlite3';
import { spawn as spawnPty, type IPty } from 'node-pty';

const BYTES = Math.round(Number(process.env['OMWATCH_BENCH_MB'] ?? 50) * 1e6);
const RUNS = Number(process.env['OMWATCH_BENCH_RUNS'] ?? 3);
const ECHO_SAMPLES = Number(process.env['OMWATCH_BENCH_ECHO_SAMPLES'] ?? 1_000);
const ECHO_WARMUP = 100;
/** A line is ended after this many typed characters, so the line discipline's buffer stays short. */
const ECHO_LINE_CHARS = 50;
/** A variant that delivers fewer or more bytes than this off the expected count has lost (or added) output. */
const TOLERANCE_BYTES = 0;
/** No single run may take longer: a stuck variant fails the bench instead of hanging it. */
const RUN_TIMEOUT_MS = 60_000;
const ROOT = new URL('../../', import.meta.url).pathname;
const AGENT = join(ROOT, 'bin/omwatch-agent.js');
const COLLECTOR = join(ROOT, 'bin/omwatch-collector.js');
const CLOCK_TICKS = 100;

function say(message: string): void {
  process.stderr.write(`${message}\n`);
}

if (process.getuid?.() !== 0) {
  say('bench:pty must run as root: the agent daemon owns its sessions\' ptys, scans /proc and drops to the user with setpriv (sudo npm run bench:pty)');
  process.exit(1);
}

function median(samples: number[]): number {
  const sorted = samples.toSorted((a, b) => a - b);
  return sorted[sorted.length >> 1]!;
}

function percentile(samples: number[], p: number): number {
  const sorted = samples.toSorted((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]!;
}

const round = (value: number, digits: number) => Math.round(value * 10 ** digits) / 10 ** digits;

/** Fields of /proc/PID/stat after the command name (which may hold spaces): state is [0], utime [11]. */
function statFields(pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** CPU seconds (user + system) a process has used so far; undefined once it is gone. */
function cpuSeconds(pid: number): number | undefined {
  const fields = statFields(pid);
  return fields ? (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS : undefined;
}

/** The machine's CPU time so far, all cores: total and idle (with iowait), in clock ticks. */
function machineTicks(): { total: number; idle: number } {
  const fields = readFileSync('/proc/stat', 'latin1').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  return { total: fields.slice(0, 8).reduce((sum, value) => sum + value, 0), idle: fields[3]! + fields[4]! };
}

/** CPU seconds of the children a process has waited for (and of theirs): cutime + cstime. */
function childrenCpuSeconds(pid: number): number {
  const fields = statFields(pid);
  return fields ? (Number(fields[13]) + Number(fields[14])) / CLOCK_TICKS : Number.NaN;
}

const ENV = { ...process.env, TERM: 'xterm' } as Record<string, string>;

function outerPty(file: string, args: string[]): IPty {
  return spawnPty(file, args, { name: 'xterm', cols: 80, rows: 24, cwd: ROOT, env: ENV, encoding: null });
}

// ---------------------------------------------------------------------------------------------------
// Set-up: the output file, a collector and an agent enrolled with it. Everything started is stopped in
// `cleanUp`, which also runs on an error or Ctrl-C.

const shm = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'omwatch-bench-pty-'));
const dataDir = mkdtempSync(join(tmpdir(), 'omwatch-bench-pty-'));
const children: ChildProcess[] = [];
const ptys = new Set<IPty>();

async function cleanUp(): Promise<void> {
  for (const pty of ptys) pty.kill('SIGKILL');
  // The agent first, so it does not spend its last seconds reconnecting to a collector that is gone.
  for (const child of children.toReversed()) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }
  rmSync(shm, { recursive: true, force: true });
  rmSync(dataDir, { recursive: true, force: true });
}

let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    interrupted = true;
    say(`${signal}: stopping`);
    void cleanUp().then(() => process.exit(130));
  });
}

function run(bin: string, args: string[]): string {
  const result = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${bin.split('/').pop()} ${args.slice(0, 2).join(' ')} failed: ${result.stderr.trim()}`);
  return result.stdout.trim();
}

/** Forwards a child's log lines to stderr with a prefix (warnings only: both run at --log-level warn). */
function forward(child: ChildProcess, name: string): void {
  if (child.stderr) createInterface({ input: child.stderr }).on('line', (line) => say(`  ${name}: ${line}`));
}

async function startCollector(dir: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawnChild(process.execPath, [COLLECTOR, 'serve', '--listen', '127.0.0.1:0', '--data', dir, '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  forward(child, 'collector');
  const url = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the collector exited (${code}) before listening`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const match = /listening on (\S+)/.exec(line);
      if (match) resolve(match[1]!);
    });
  });
  return { child, url };
}

async function startAgent(dir: string): Promise<ChildProcess> {
  const child = spawnChild(process.execPath, [AGENT, 'run', '--data', dir, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  forward(child, 'agent');
  const socket = join(dir, 'shell.sock');
  await new Promise<void>((resolve, reject) => {
    const watcher = watch(dir);
    const done = (error?: Error) => {
      watcher.close();
      clearTimeout(timer);
      child.off('exit', onExit);
      if (error) reject(error);
      else resolve();
    };
    const onExit = (code: number | null) => done(new Error(`the agent exited (${code}) before listening on ${socket}`));
    const timer = setTimeout(() => done(new Error(`the agent did not listen on ${socket} within 30 s`)), 30_000);
    child.once('exit', onExit);
    watcher.on('change', () => {
      if (existsSync(socket)) done();
    });
    if (existsSync(socket)) done();
  });
  return child;
}

/** Waits until the daemon and the collector are idle (under 5% of a core for 300 ms): the previous run's records delivered. */
async function settle(pids: number[], limitMs = 20_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  let before = pids.map((pid) => cpuSeconds(pid) ?? 0);
  while (Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 300));
    const now = pids.map((pid) => cpuSeconds(pid) ?? 0);
    const used = now.reduce((sum, value, i) => sum + value - before[i]!, 0);
    before = now;
    if (used <= 0.3 * 0.05 * pids.length) return;
  }
  say(`  (the daemon and collector were still busy after ${limitMs / 1000} s; going on)`);
}

/** Bytes a file's text becomes through a pty: its line discipline (ONLCR) writes each "\n" as "\r\n". */
function ptyBytes(path: string): number {
  const text = readFileSync(path);
  return text.length + text.reduce((count, byte) => count + (byte === 0x0a ? 1 : 0), 0);
}

// ---------------------------------------------------------------------------------------------------
// Throughput: the outer pty's reader counts every byte and times the first and the last.

interface Variant {
  name: 'bare' | 'recorded' | 'script' | 'tlog';
  /** The command run in the outer pty to print `file`. */
  command: (file: string, scratch: string) => [string, string[]];
  /** Processes whose CPU is charged to the variant besides its own. */
  helpers?: Array<{ name: string; pid: number }>;
  /** Bytes the variant prints of its own besides the output. */
  ownBytes?: number;
}

interface RunResult {
  bytes: number;
  mbps: number;
  /** The longest the terminal went without output between the first byte and the last: the worst stall. */
  maxGapMs: number;
  exitCode: number;
  /** CPU seconds of the variant's whole process tree (the recorder and `cat`; only `cat` when bare). */
  cpu: number;
  /** CPU seconds of each helper (the daemon, the collector) from the start to the end mark, and its reading then. */
  helpersCpu: number[];
  helpersCpuAtEnd: number[];
  /** How busy the machine's cores were from the first byte to the end mark (0–1), and this process (the reader). */
  machineBusy: number;
  readerCpu: number;
  /** Size of the file the recorder wrote (script, tlog-rec), if any. */
  logBytes: number | undefined;
}

/** What the outer terminal's shell prints once the variant has exited: ESC ] 5379 ; <exit code> BEL. */
const END_MARK = Buffer.from('\x1b]5379;');

// The outer pty's session leader is a shell that outlives the variant, as in a user's terminal: were the
// variant itself the leader, its exit would hang the terminal up, and the kernel discards what the reader
// has not read yet (the pty's flush on hangup), which would charge the harness's losses to the variant.
// The shell then reports the exit code and the CPU of the variant's process tree is its children's.
function throughputRun(variant: Variant, file: string): Promise<RunResult> {
  const scratch = join(shm, `${variant.name}.log`);
  const [bin, args] = variant.command(file, scratch);
  const helpers = variant.helpers ?? [];
  const helpersBefore = helpers.map(({ pid }) => cpuSeconds(pid) ?? 0);
  return new Promise((resolve, reject) => {
    const pty = outerPty('sh', ['-c', `"$@"; code=$?; printf '\\033]5379;%d\\007' "$code"; exec sleep 3600`, 'sh', bin, ...args]);
    ptys.add(pty);
    let bytes = 0;
    let first = 0n;
    let last = 0n;
    let maxGap = 0n;
    /** Set once the end mark has begun: what follows is the mark, not output. */
    let mark: Buffer | undefined;
    /** The last two reads of output (kept, not copied), to show when a variant prints something else (an error). */
    let tail: Buffer[] = [];
    let machineAtFirst = machineTicks();
    let readerAtFirst = process.cpuUsage();
    const timer = setTimeout(() => {
      pty.kill('SIGKILL');
      reject(new Error(`${variant.name}: no end within ${RUN_TIMEOUT_MS / 1000} s (${bytes} bytes read)`));
    }, RUN_TIMEOUT_MS);
    const finish = (exitCode: number) => {
      clearTimeout(timer);
      const cpu = childrenCpuSeconds(pty.pid);
      const machine = machineTicks();
      const machineBusy = 1 - (machine.idle - machineAtFirst.idle) / (machine.total - machineAtFirst.total);
      const reader = process.cpuUsage(readerAtFirst);
      const readerCpu = (reader.user + reader.system) / 1e6;
      const helpersCpuAtEnd = helpers.map(({ pid }) => cpuSeconds(pid) ?? 0);
      const helpersCpu = helpersCpuAtEnd.map((value, i) => value - helpersBefore[i]!);
      pty.kill('SIGKILL');
      ptys.delete(pty);
      const logBytes = existsSync(scratch) ? statSync(scratch).size : undefined;
      rmSync(scratch, { force: true });
      resolve({ bytes, mbps: bytes / 1e6 / (Number(last - first) / 1e9), maxGapMs: Number(maxGap) / 1e6, exitCode, cpu, helpersCpu, helpersCpuAtEnd, machineBusy, readerCpu, logBytes });
    };
    pty.onData((data) => {
      const now = process.hrtime.bigint();
      let chunk = data as unknown as Buffer;
      if (!mark) {
        // The output (base64) holds no ESC: the first one begins the end mark.
        const at = chunk.indexOf(0x1b);
        const output = at === -1 ? chunk.length : at;
        if (output > 0) {
          tail = [tail.at(-1) ?? Buffer.alloc(0), chunk.subarray(0, output)];
          if (bytes === 0) {
            first = now;
            machineAtFirst = machineTicks();
            readerAtFirst = process.cpuUsage();
          }
          if (bytes > 0 && now - last > maxGap) maxGap = now - last;
          last = now;
          bytes += output;
        }
        if (at === -1) return;
        mark = Buffer.alloc(0);
        chunk = chunk.subarray(at);
      }
      mark = Buffer.concat([mark, chunk]);
      const bel = mark.indexOf(0x07);
      if (bel === -1) return;
      if (!mark.subarray(0, END_MARK.length).equals(END_MARK)) {
        clearTimeout(timer);
        pty.kill('SIGKILL');
        reject(new Error(`${variant.name}: an escape sequence in the output, where only base64 was printed; the output ended with: ${JSON.stringify(Buffer.concat([...tail, mark]).subarray(-4_096).toString('utf8'))}`));
        return;
      }
      finish(Number(mark.subarray(END_MARK.length, bel).toString('latin1')));
    });
    pty.onExit(({ exitCode }) => {
      if (!mark) reject(new Error(`${variant.name}: the outer shell exited (${exitCode}) before reporting the end`));
    });
  });
}

// ---------------------------------------------------------------------------------------------------
// Echo latency: `cat` with no arguments in canonical mode, so the kernel's line discipline echoes each
// key; one printable key at a time, timed from the write to the read of its echo. The variants are open
// at once and take turns a line at a time, so a noisy second on this VM falls on all of them alike.

interface EchoSession {
  name: string;
  /** Types one line of ECHO_LINE_CHARS keys and Enter; returns each key's echo latency in ms. */
  line(): Promise<number[]>;
  close(): Promise<void>;
}

async function openEcho(name: string, bin: string, args: string[]): Promise<EchoSession> {
  const pty = outerPty(bin, args);
  ptys.add(pty);
  let received = '';
  let receivedBytes = 0;
  let waiting: { until: number; resolve: (at: bigint) => void } | undefined;
  pty.onData((data) => {
    const at = process.hrtime.bigint();
    const chunk = data as unknown as Buffer;
    receivedBytes += chunk.length;
    if (received.length < 64) received += chunk.toString('latin1');
    if (waiting && receivedBytes >= waiting.until) {
      const { resolve } = waiting;
      waiting = undefined;
      resolve(at);
    }
  });
  const exited = new Promise<void>((resolve) => pty.onExit(() => resolve()));
  const until = (count: number, what: string): Promise<bigint> => new Promise((resolve, reject) => {
    if (receivedBytes >= count) return resolve(process.hrtime.bigint());
    const timer = setTimeout(() => reject(new Error(`${name} echo: waited 5 s for ${what} (${receivedBytes} bytes so far, expected ${count}; began ${JSON.stringify(received)})`)), 5_000);
    waiting = { until: count, resolve: (at) => {
      clearTimeout(timer);
      resolve(at);
    } };
  });
  // The command prints READY, then becomes `cat`: by then the recorded shell's client has put the outer
  // terminal in raw mode (its STARTED frame comes before any output), so only the inner pty echoes.
  await until('READY'.length, 'READY');
  if (!received.startsWith('READY')) throw new Error(`${name} echo: expected READY first, got ${JSON.stringify(received)}`);
  let expected = receivedBytes;
  return {
    name,
    async line() {
      const samples: number[] = [];
      for (let i = 0; i < ECHO_LINE_CHARS; i++) {
        const sent = process.hrtime.bigint();
        pty.write(String.fromCharCode(97 + (i % 26)));
        const at = await until(++expected, 'an echo');
        samples.push(Number(at - sent) / 1e6);
      }
      // Enter: the echo "\r\n", then cat's copy of the line and its "\r\n"; not timed.
      pty.write('\r');
      expected += 2 + ECHO_LINE_CHARS + 2;
      await until(expected, 'the end of a line');
      return samples;
    },
    async close() {
      pty.kill('SIGHUP');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 2_000))]);
      ptys.delete(pty);
    },
  };
}

async function echoLatencies(variants: Array<[string, string, string[]]>): Promise<Map<string, number[]>> {
  const sessions: EchoSession[] = [];
  const samples = new Map<string, number[]>();
  try {
    for (const [name, bin, args] of variants) {
      sessions.push(await openEcho(name, bin, args));
      samples.set(name, []);
    }
    const lines = Math.ceil(ECHO_SAMPLES / ECHO_LINE_CHARS);
    for (let i = 0; i < ECHO_WARMUP / ECHO_LINE_CHARS + lines; i++) {
      for (const session of sessions) {
        const line = await session.line();
        if (i >= ECHO_WARMUP / ECHO_LINE_CHARS) samples.get(session.name)!.push(...line);
      }
    }
    return samples;
  } finally {
    for (const session of sessions) await session.close();
  }
}

// ---------------------------------------------------------------------------------------------------

/** tlog-rec, installed from Debian's tlog if missing (the bench runs as root; apt is Debian's). */
function findTlog(): string | undefined {
  const which = () => spawnSync('sh', ['-c', 'command -v tlog-rec'], { encoding: 'utf8' }).stdout.trim() || undefined;
  if (which() || !existsSync('/usr/bin/apt-get')) return which();
  say('installing Debian\'s tlog for the tlog-rec comparison');
  const installed = spawnSync('apt-get', ['install', '-y', '-qq', '-o', 'DPkg::Lock::Timeout=300', '--no-install-recommends', 'tlog'], {
    encoding: 'utf8', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, timeout: 300_000,
  });
  if (installed.status !== 0) say(`apt-get install tlog failed: ${(installed.stderr || installed.stdout).trim().split('\n').at(-1) ?? ''}`);
  return which();
}

async function main(): Promise<number> {
  const started = Date.now();
  const loadAverageAtStart = loadavg()[0]!;
  const tlog = findTlog();
  const script = spawnSync('sh', ['-c', 'command -v script'], { encoding: 'utf8' }).stdout.trim();
  if (!script) throw new Error('util-linux `script` is not installed (apt-get install bsdutils)');
  if (!tlog) say('tlog-rec is not installed (apt-get install tlog): its figures are null');

  const file = join(shm, 'output.txt');
  const made = spawnSync('sh', ['-c', `head -c ${Math.ceil(BYTES * 0.75) + 100} /dev/urandom | base64 -w 76 | head -c ${BYTES} > '${file}'`]);
  if (made.status !== 0 || statSync(file).size !== BYTES) throw new Error(`could not write ${BYTES} bytes of base64 to ${file}`);
  const expectedBytes = ptyBytes(file);
  say(`${(BYTES / 1e6).toFixed(1)} MB of base64 in ${file} (${expectedBytes} bytes through a pty, which writes "\\n" as "\\r\\n"), ${RUNS} runs per variant; load average ${loadavg()[0]!.toFixed(2)}`);
  // The warm-up's output: the first 5 MB.
  const warmFile = join(shm, 'warm-up.txt');
  writeFileSync(warmFile, readFileSync(file).subarray(0, Math.min(BYTES, 5_000_000)));

  const collectorDir = join(dataDir, 'collector');
  const agentDir = join(dataDir, 'agent');
  const collector = await startCollector(collectorDir);
  const token = run(COLLECTOR, ['token', 'create', '--role', 'enroll', '--name', 'bench:pty', '--data', collectorDir]).split('\n').at(-1)!;
  run(AGENT, ['enroll', '--collector', collector.url, '--token', token, '--data', agentDir]);
  const agent = await startAgent(agentDir);
  const daemons = [{ name: 'daemon', pid: agent.pid! }, { name: 'collector', pid: collector.child.pid! }];
  const daemonPids = daemons.map(({ pid }) => pid);
  say(`collector at ${collector.url}, agent daemon enrolled and listening on ${join(agentDir, 'shell.sock')} (${((Date.now() - started) / 1000).toFixed(1)} s)`);

  const variants: Variant[] = [
    { name: 'bare', command: (path) => ['cat', [path]] },
    { name: 'recorded', command: (path) => [process.execPath, [AGENT, 'shell', '--data', agentDir, '--', 'cat', path]], helpers: daemons },
    // -e: the command's exit code; the typescript goes to a file, as a recording does.
    { name: 'script', command: (path, scratch) => [script, ['-q', '-e', '-c', `cat '${path}'`, scratch]] },
    // tlog-rec ends with a "\r\n" of its own. Its default rate limit action is "pass" (no limit): it logs all.
    ...(tlog ? [{ name: 'tlog', command: (path: string, scratch: string) => [tlog, ['--writer=file', `--file-path=${scratch}`, 'cat', path]], ownBytes: 2 } satisfies Variant] : []),
  ];

  const results = new Map<Variant['name'], RunResult[]>(variants.map((variant) => [variant.name, []]));
  const problems: string[] = [];
  const deliveryCpu: number[][] = [];
  // A warm-up of the recorded path (first session: JIT, outbox statements), not counted; then a session
  // that prints nothing, for the client's start-up CPU (node, tsx, the CLI's imports) apart from relaying.
  await throughputRun(variants[1]!, warmFile);
  await settle(daemonPids);
  const empty = join(shm, 'empty.txt');
  writeFileSync(empty, 'x');
  const idle = await throughputRun(variants[1]!, empty);
  say(`recorded shell start-up: client ${idle.cpu.toFixed(2)} s CPU, daemon ${idle.helpersCpu[0]!.toFixed(2)} s, collector ${idle.helpersCpu[1]!.toFixed(2)} s`);
  await settle(daemonPids);
  for (let r = 0; r < RUNS; r++) {
    // Each round runs every variant once, in a rotated order: this VM's speed drifts over seconds.
    const order = variants.map((_, i) => variants[(i + r) % variants.length]!);
    for (const variant of order) {
      const result = await throughputRun(variant, file);
      if (interrupted) return 130;
      results.get(variant.name)!.push(result);
      const off = result.bytes - expectedBytes - (variant.ownBytes ?? 0);
      const cpu = variant.name === 'recorded'
        ? `CPU: client + cat ${result.cpu.toFixed(2)} s, daemon ${result.helpersCpu[0]!.toFixed(2)} s, collector ${result.helpersCpu[1]!.toFixed(2)} s`
        : `CPU: ${variant.name === 'bare' ? 'cat' : `${variant.name} + cat`} ${result.cpu.toFixed(2)} s`;
      say(`round ${r + 1} ${variant.name.padEnd(8)} ${result.mbps.toFixed(1).padStart(5)} MB/s  longest stall ${result.maxGapMs.toFixed(1)} ms  ${result.bytes} bytes${off === 0 ? '' : ` (${off > 0 ? '+' : ''}${off})`}  exit ${result.exitCode}  ${cpu}, reader ${result.readerCpu.toFixed(2)} s; cores ${Math.round(result.machineBusy * 100)}% busy  (${((Date.now() - started) / 1000).toFixed(0)} s)`);
      if (Math.abs(off) > TOLERANCE_BYTES) problems.push(`${variant.name}, round ${r + 1}: ${off < 0 ? 'lost' : 'added'} ${Math.abs(off)} bytes of ${expectedBytes}`);
      if (result.exitCode !== 0) problems.push(`${variant.name}, round ${r + 1}: exit code ${result.exitCode}`);
      // A recorder that writes a file must have kept at least the output (tlog-rec's JSON is larger).
      if (result.logBytes !== undefined && result.logBytes < BYTES) problems.push(`${variant.name}, round ${r + 1}: its log holds ${result.logBytes} bytes, less than the ${BYTES} of output`);
      if (variant.name === 'recorded') {
        // The records are still being delivered: the daemon's and the collector's work until idle is the run's too.
        await settle(daemonPids);
        const after = daemonPids.map((pid) => (cpuSeconds(pid) ?? 0));
        deliveryCpu.push(after.map((value, i) => value - result.helpersCpuAtEnd[i]!));
        say(`         then, until idle: daemon ${deliveryCpu.at(-1)![0]!.toFixed(2)} s, collector ${deliveryCpu.at(-1)![1]!.toFixed(2)} s CPU`);
      }
    }
  }

  // What the daemon says it recorded: each session's end event carries the output bytes it kept.
  const recordedBytes = (() => {
    const db = new Database(join(agentDir, 'outbox.db'), { readonly: true, fileMustExist: true });
    const rows = db.prepare(`SELECT json FROM records WHERE kind = 'event' AND json LIKE '%"remote_session"%' AND json LIKE '%"Action":"end"%' ORDER BY seq`).all() as Array<{ json: string }>;
    db.close();
    return rows.map((row) => (JSON.parse(row.json) as { fields: { Tool?: string; OutputBytes?: number } }).fields)
      .filter((fields) => fields.Tool === 'omwatch-shell').map((fields) => fields.OutputBytes ?? -1);
  })();
  say(`the daemon's recordings (end events' OutputBytes; warm-up, start-up, rounds): ${recordedBytes.join(', ')}`);
  const sessions = ['warm-up', 'start-up', ...Array.from({ length: RUNS }, (_, r) => `round ${r + 1}`)];
  if (recordedBytes.length !== sessions.length) problems.push(`the outbox holds ${recordedBytes.length} recorded sessions' ends, expected ${sessions.length}`);
  for (const [i, kept] of recordedBytes.entries()) {
    const expected = i === 0 ? ptyBytes(warmFile) : i === 1 ? 1 : expectedBytes;
    if (kept !== expected) problems.push(`the daemon's recording of the ${sessions[i] ?? `session ${i + 1}`} kept ${kept} of ${expected} bytes`);
  }

  const echoVariants: Array<[string, string, string[]]> = [
    ['bare', 'sh', ['-c', 'printf READY; exec cat']],
    ['recorded', process.execPath, [AGENT, 'shell', '--data', agentDir, '--', 'sh', '-c', 'printf READY; exec cat']],
    ['script', script, ['-q', '-c', 'printf READY; exec cat', '/dev/null']],
  ];
  const echo = await echoLatencies(echoVariants);
  for (const [name, samples] of echo) {
    say(`echo ${name.padEnd(8)} p50 ${percentile(samples, 0.5).toFixed(3)} ms  p99 ${percentile(samples, 0.99).toFixed(3)} ms  max ${Math.max(...samples).toFixed(3)} ms  (${samples.length} keys)`);
  }

  const mbps = (name: Variant['name']) => {
    const runs = results.get(name);
    return runs && runs.length > 0 ? round(median(runs.map((result) => result.mbps)), 1) : null;
  };
  const echoMs = (name: string, p: number) => round(percentile(echo.get(name)!, p), 3);
  const recordedRuns = results.get('recorded')!;
  const figures = {
    recordedMBps: mbps('recorded'),
    scriptMBps: mbps('script'),
    tlogMBps: mbps('tlog'),
    echoAddedP99Ms: round(echoMs('recorded', 0.99) - echoMs('bare', 0.99), 3),
    bareMBps: mbps('bare'),
    /** The longest pause in the terminal's output during the 50 MB, median over the rounds. */
    maxStallMs: Object.fromEntries(variants.map((variant) => [variant.name, round(median(results.get(variant.name)!.map((result) => result.maxGapMs)), 1)])),
    recordedVsScript: round(mbps('recorded')! / mbps('script')!, 2),
    echoBareP50Ms: echoMs('bare', 0.5),
    echoBareP99Ms: echoMs('bare', 0.99),
    echoRecordedP50Ms: echoMs('recorded', 0.5),
    echoRecordedP99Ms: echoMs('recorded', 0.99),
    echoScriptP50Ms: echoMs('script', 0.5),
    echoScriptP99Ms: echoMs('script', 0.99),
    cpuSeconds: Object.fromEntries(variants.map((variant) => [variant.name, round(median(results.get(variant.name)!.map((result) => result.cpu)), 2)])),
    recordedClientStartCpuSeconds: round(idle.cpu, 2),
    recordedDaemonCpuSeconds: round(median(recordedRuns.map((result) => result.helpersCpu[0]!)), 2),
    recordedCollectorCpuSeconds: round(median(recordedRuns.map((result) => result.helpersCpu[1]!)), 2),
    readerCpuSeconds: Object.fromEntries(variants.map((variant) => [variant.name, round(median(results.get(variant.name)!.map((result) => result.readerCpu)), 2)])),
    coresBusy: Object.fromEntries(variants.map((variant) => [variant.name, round(median(results.get(variant.name)!.map((result) => result.machineBusy)), 2)])),
    loadAverage: round(loadAverageAtStart, 2),
    bytes: BYTES,
    ptyBytes: expectedBytes,
    runs: RUNS,
    echoSamples: ECHO_SAMPLES,
    outputIntact: problems.length === 0,
    seconds: round((Date.now() - started) / 1000, 1),
    date: new Date().toISOString(),
  };
  const goals = [
    `recorded ${figures.recordedVsScript}× script (goal ≥ 0.9: ${figures.recordedVsScript >= 0.9 ? 'met' : 'NOT met'})`,
    `echo p99 +${figures.echoAddedP99Ms} ms over bare node-pty (goal ≤ 2 ms: ${figures.echoAddedP99Ms <= 2 ? 'met' : 'NOT met'})`,
  ];
  say(`median: recorded ${figures.recordedMBps} MB/s, script ${figures.scriptMBps} MB/s, tlog-rec ${figures.tlogMBps ?? 'n/a'} MB/s, bare node-pty ${figures.bareMBps} MB/s; ${goals.join('; ')}`);
  for (const problem of problems) say(`OUTPUT NOT INTACT: ${problem}`);
  process.stdout.write(`${JSON.stringify(figures)}\n`);
  return problems.length === 0 ? 0 : 1;
}

let code = 1;
try {
  code = await main();
} catch (error) {
  say(`bench:pty failed: ${(error as Error).stack ?? error}`);
} finally {
  await cleanUp();
}
process.exit(code);
