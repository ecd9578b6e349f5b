// `npm start`: a collector and an agent on this host, with embedded SQLite under ./data, the agent
// enrolled on first start. Prints where to look (the dashboard first) and an analyst token; Ctrl-C stops both, agent first.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

const root = resolve(new URL('..', import.meta.url).pathname);
const data = resolve(process.env['OMWATCH_DATA'] ?? join(root, 'data'));
const port = Number(process.env['OMWATCH_PORT'] ?? 8470);
const collectorData = join(data, 'collector');
const agentData = join(data, 'agent');
const AGENT = join(root, 'bin/omwatch-agent.js');
const COLLECTOR = join(root, 'bin/omwatch-collector.js');

function run(bin: string, args: string[]): string {
  const result = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${bin.split('/').pop()} ${args[0]} failed: ${result.stderr.trim()}`);
  return result.stdout.trim();
}

mkdirSync(data, { recursive: true, mode: 0o700 });
const collector = spawn(process.execPath, [COLLECTOR, 'serve', '--listen', `127.0.0.1:${port}`, '--data', collectorData, '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'inherit'] });
const url = await new Promise<string>((done, fail) => {
  collector.once('exit', (code) => fail(new Error(`the collector exited (${code}) before listening; is port ${port} taken? (OMWATCH_PORT=… to change it)`)));
  createInterface({ input: collector.stdout! }).on('line', (line) => {
    const match = /listening on (\S+)/.exec(line);
    if (match) done(match[1]!);
  });
});

if (!existsSync(join(agentData, 'enrollment.json'))) {
  const token = run(COLLECTOR, ['token', 'create', '--role', 'enroll', '--name', 'npm start', '--data', collectorData]).split('\n').at(-1)!;
  run(AGENT, ['enroll', '--collector', url, '--token', token, '--data', agentData]);
}
const analyst = run(COLLECTOR, ['token', 'create', '--role', 'analyst', '--name', 'npm start', '--data', collectorData]).split('\n').at(-1)!;
const agent: ChildProcess = spawn(process.execPath, [AGENT, 'run', '--data', agentData, '--log-level', 'warn'], { stdio: ['ignore', 'inherit', 'inherit'] });

const privileged = process.getuid?.() === 0;
console.log(`
omwatch is running on this host.

  dashboard     ${url}/   (log in with the analyst token below)
  collector     ${url}   (data: ${collectorData})
  agent         enrolled, delivering to it   (outbox: ${join(agentData, 'outbox.db')})${privileged ? '' : '\n                not root: it sees only what this user may (sudo npm start for everything)'}
  analyst token ${analyst}

  API           ${url}/api/v1/openapi.json   (Authorization: Bearer <token>)
  live alerts   node bin/omwatch-collector.js tail --url ${url} --token <analyst token>
  agents        node bin/omwatch-collector.js agents --data ${collectorData}
  export        node bin/omwatch-collector.js export --data ${collectorData}
  verify        node bin/omwatch-collector.js verify --data ${collectorData}
  recorded shell node bin/omwatch-agent.js shell --data ${agentData}
  sessions      node bin/omwatch-collector.js sessions --data ${collectorData}

Ctrl-C stops both.`);

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  agent.once('exit', () => collector.kill('SIGTERM'));
  agent.kill('SIGTERM');
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
agent.once('exit', (code) => {
  if (!stopping) {
    console.error(`the agent exited (${code}); stopping the collector`);
    collector.kill('SIGTERM');
  }
});
collector.once('exit', () => {
  if (!stopping) agent.kill('SIGTERM');
  process.exitCode = stopping ? 0 : 1;
});
