// bench:ingest — 50 simulated agents over loopback to one collector process with the SQLite store:
// records durably stored per second; alert latency from enqueue to a live subscriber at 10% of that
// load; and, in the same run, a bare ws echo server fed the same frames, as the ceiling.
// Prints progress on stderr and one JSON line last on stdout.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { v7 as uuidv7 } from 'uuid';
import { WebSocket } from 'ws';
import { newSecret, secretHash } from '../../collector/auth.ts';
import { chainHash, GENESIS, INGEST_PATH, LIVE_PATH, STREAM_HEADER, webSocketUrl } from '../../collector/protocol/index.ts';
import { openSqliteStore } from '../../collector/store/sqlite/index.ts';

const { values } = parseArgs({ options: { agents: { type: 'string', default: '50' }, records: { type: 'string', default: '6000' }, batch: { type: 'string', default: '500' }, 'latency-seconds': { type: 'string', default: '8' } } });
const AGENTS = Number(values.agents);
const PER_AGENT = Number(values.records);
const BATCH = Number(values.batch);
const IN_FLIGHT = 8;
const COLLECTOR = new URL('../../bin/omwatch-collector.js', import.meta.url).pathname;

function say(message: string): void {
  process.stderr.write(`${message}\n`);
}

const dir = mkdtempSync(join(tmpdir(), 'omwatch-bench-ingest-'));
const keys: string[] = [];
const analyst = newSecret('omwt');
{
  const store = openSqliteStore(join(dir, 'collector.db'));
  for (let a = 0; a < AGENTS; a++) {
    const key = newSecret('omwk');
    store.createAgent({ id: uuidv7(), name: `bench-${a}`, hostId: null, keyHash: secretHash(key), enrolledWith: 'bench' });
    keys.push(key);
  }
  store.createToken({ id: uuidv7(), role: 'analyst', name: 'bench', secretHash: secretHash(analyst) });
  store.close();
}

/** A chained record of a realistic process event (or an alert), as an agent's outbox would send it. */
function record(stream: string, seq: number, prev: string, alertSentAt?: number): Record<string, unknown> {
  const host = { id: 'bench-host', name: 'hmi-07' };
  const base = alertSentAt === undefined
    ? { id: uuidv7(), time: new Date().toISOString(), host, product: 'linux', category: 'process_creation', fields: {
      ProcessId: 1000 + seq, Image: '/usr/bin/python3.11', CommandLine: `python3 /opt/hmi/poll_modbus.py --unit 3 --interval 500 --run ${seq}`,
      CurrentDirectory: '/home/vendor1', User: 'vendor1', ParentProcessId: 900, ParentImage: '/usr/bin/bash', ParentCommandLine: '-bash', SessionId: 'ssh-3f2a9c', InMaintenanceWindow: true,
    } }
    : { id: uuidv7(), time: new Date().toISOString(), rule: { id: 'bench', title: 'Bench alert', level: 'high', tags: [], author: 'omwatch' }, eventIds: [uuidv7()], host, summary: `sent ${alertSentAt}` };
  const withChain: Record<string, unknown> = { ...base, stream, seq, prev };
  withChain['hash'] = chainHash(withChain);
  return withChain;
}

say(`building ${AGENTS} × ${PER_AGENT} chained records…`);
const streams = keys.map((_, a) => `bench-stream-${a}-${process.pid}`);
const frames = streams.map((stream) => {
  const out: Array<{ text: string; last: number }> = [];
  let prev = GENESIS;
  for (let start = 1; start <= PER_AGENT; start += BATCH) {
    const records: string[] = [];
    let last = start;
    for (let seq = start; seq < start + BATCH && seq <= PER_AGENT; seq++) {
      const r = record(stream, seq, prev);
      prev = r['hash'] as string;
      records.push(JSON.stringify(r));
      last = seq;
    }
    out.push({ text: `{"type":"batch","stream":"${stream}","events":[${records.join(',')}]}`, last });
  }
  return out;
});

function startProcess(args: string[], pattern: RegExp): Promise<{ kill(): void; match: RegExpMatchArray }> {
  // OMWATCH_BENCH_PROFILE=DIR profiles the spawned processes (node --cpu-prof) for a look at what bounds them.
  const profile = process.env['OMWATCH_BENCH_PROFILE'];
  const child = spawn(process.execPath, [...(profile ? ['--cpu-prof', '--cpu-prof-dir', profile] : []), ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited ${code}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const match = pattern.exec(line);
      if (match) resolve({ kill: () => child.kill('SIGTERM'), match });
    });
  });
}

/** Every agent sends its frames, IN_FLIGHT at a time, each completed by `done(frameText, reply)`. */
async function drive(url: (a: number) => { url: URL; headers: Record<string, string> }, isDone: (reply: string, last: number) => boolean): Promise<number> {
  const sockets = await Promise.all(frames.map((_, a) => new Promise<WebSocket>((resolve, reject) => {
    const { url: u, headers } = url(a);
    const ws = new WebSocket(u, { headers, perMessageDeflate: false });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  })));
  const started = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  await Promise.all(sockets.map((ws, a) => new Promise<void>((resolve) => {
    const mine = frames[a]!;
    let sent = 0;
    let completed = 0;
    const pump = () => {
      while (sent < mine.length && sent - completed < IN_FLIGHT) ws.send(mine[sent++]!.text);
    };
    ws.on('message', (data) => {
      const text = data.toString();
      while (completed < sent && isDone(text, mine[completed]!.last)) completed++;
      if (completed === mine.length) resolve();
      else pump();
    });
    pump();
  })));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const used = process.cpuUsage(cpu);
  say(`  (the simulated agents used ${Math.round(((used.user + used.system) / 1e6 / seconds) * 100)}% of a core)`);
  for (const ws of sockets) ws.close();
  return (AGENTS * PER_AGENT) / seconds;
}

// 1. Throughput into the collector: a record counts once the collector has acked it (committed).
const collector = await startProcess([COLLECTOR, 'serve', '--listen', '127.0.0.1:0', '--data', dir, '--log-level', 'warn'], /listening on (\S+)/);
const base = collector.match[1]!;
say(`collector at ${base}; ${AGENTS} agents sending ${PER_AGENT} records each in batches of ${BATCH}, ${IN_FLIGHT} in flight`);
const storedPerSec = await drive(
  (a) => ({ url: webSocketUrl(base, INGEST_PATH), headers: { authorization: `Bearer ${keys[a]}`, [STREAM_HEADER]: streams[a]! } }),
  (reply, last) => {
    const frame = JSON.parse(reply) as { type: string; seq?: number };
    return frame.type === 'ack' && (frame.seq ?? 0) >= last;
  },
);
say(`stored: ${Math.round(storedPerSec)} records/s`);

// 2. The ceiling: a bare ws server that echoes each frame, driven the same way.
const echo = await startProcess(['--input-type=module', '-e', `
import { WebSocketServer } from 'ws';
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: 4 * 1024 * 1024, perMessageDeflate: false });
wss.on('connection', (ws) => ws.on('message', (data) => ws.send(data)));
wss.on('listening', () => console.log('echo ' + wss.address().port));
`], /echo (\d+)/);
const echoPerSec = await drive(() => ({ url: new URL(`ws://127.0.0.1:${echo.match[1]}/`), headers: {} }), () => true);
echo.kill();
say(`echo: ${Math.round(echoPerSec)} records/s`);

// 3. Alert latency at 10% of the stored rate: agents send small batches every 20 ms, as an outbox
// flushes; one record in ten is an alert stamped with its enqueue time; a live subscriber times it.
const rate = storedPerSec * 0.1;
const latencies: number[] = [];
const subscriber = new WebSocket(webSocketUrl(base, LIVE_PATH), { headers: { authorization: `Bearer ${analyst}` } });
await new Promise((resolve) => subscriber.once('open', resolve));
subscriber.on('message', (data) => {
  const now = performance.timeOrigin + performance.now();
  const match = /"summary":"sent ([0-9.]+)"/.exec(data.toString());
  if (match) latencies.push(now - Number(match[1]));
});
const live = await Promise.all(keys.map((key, a) => new Promise<WebSocket>((resolve) => {
  const ws = new WebSocket(webSocketUrl(base, INGEST_PATH), { headers: { authorization: `Bearer ${key}`, [STREAM_HEADER]: `${streams[a]}-live` } });
  ws.once('open', () => resolve(ws));
})));
const chains = live.map(() => ({ seq: 0, prev: GENESIS }));
const perTick = Math.max(1, Math.round((rate * 0.02) / AGENTS));
say(`latency: ${Math.round(rate)} records/s (${perTick} per agent per 20 ms) for ${values['latency-seconds']} s`);
const tick = setInterval(() => {
  live.forEach((ws, a) => {
    const chain = chains[a]!;
    const records: string[] = [];
    for (let i = 0; i < perTick; i++) {
      chain.seq++;
      const r = record(`${streams[a]}-live`, chain.seq, chain.prev, chain.seq % 10 === 0 ? performance.timeOrigin + performance.now() : undefined);
      chain.prev = r['hash'] as string;
      records.push(JSON.stringify(r));
    }
    ws.send(`{"type":"batch","stream":"${streams[a]}-live","events":[${records.join(',')}]}`);
  });
}, 20);
await new Promise((resolve) => setTimeout(resolve, Number(values['latency-seconds']) * 1000));
clearInterval(tick);
await new Promise((resolve) => setTimeout(resolve, 500));
for (const ws of [...live, subscriber]) ws.close();
collector.kill();
rmSync(dir, { recursive: true, force: true });

const sorted = latencies.toSorted((a, b) => a - b);
const pct = (p: number) => Math.round((sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN) * 10) / 10;
say(`${sorted.length} alerts timed`);
process.stdout.write(`${JSON.stringify({ agents: AGENTS, storedPerSec: Math.round(storedPerSec), echoPerSec: Math.round(echoPerSec), alertP50Ms: pct(0.5), alertP99Ms: pct(0.99) })}\n`);
process.exit(0);
