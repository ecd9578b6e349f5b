// Real collectors and agents for delivery tests: processes started from the shipped bins (so they can
// be SIGKILLed), CLI calls, and a producer that drives the agent's own outbox and uplink.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';

export const AGENT_BIN = new URL('../../bin/omwatch-agent.js', import.meta.url).pathname;
export const COLLECTOR_BIN = new URL('../../bin/omwatch-collector.js', import.meta.url).pathname;
export const PRODUCER = new URL('../fixtures/producer.ts', import.meta.url).pathname;

/** A port free now, so a collector can be restarted on the same one (agents keep its URL). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

export function cli(bin: string, args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 60_000, maxBuffer: 512 * 1024 * 1024, env: { ...process.env, ...env } });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** A token of the role, created by the CLI; its secret is the last line printed. */
export function createToken(dataDir: string, role: string): string {
  const result = cli(COLLECTOR_BIN, ['token', 'create', '--role', role, '--data', dataDir]);
  if (result.status !== 0) throw new Error(`token create failed: ${result.stderr}`);
  return result.stdout.trim().split('\n').at(-1)!;
}

export interface Proc {
  child: ChildProcess;
  /** Lines of stdout (and of stderr, if searched) seen so far. */
  lines: string[];
  /** Resolves with the first stdout line matching, or rejects if the process exits first. */
  waitLine(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
}

export function start(command: string[], env: NodeJS.ProcessEnv = {}, options: { searchStderr?: boolean } = {}): Proc {
  const child = spawn(command[0]!, command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const lines: string[] = [];
  let err = '';
  const waiters = new Set<{ pattern: RegExp; resolve: (m: RegExpMatchArray) => void }>();
  const onLine = (line: string) => {
    lines.push(line);
    for (const waiter of waiters) {
      const match = waiter.pattern.exec(line);
      if (match) {
        waiters.delete(waiter);
        waiter.resolve(match);
      }
    }
  };
  createInterface({ input: child.stdout! }).on('line', onLine);
  // The log on stderr is searched too when asked: start-up is announced there.
  createInterface({ input: child.stderr! }).on('line', (line) => {
    err = `${err}${line}\n`.slice(-20_000);
    if (options.searchStderr) onLine(line);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return {
    child, lines, exited,
    stderr: () => err,
    waitLine(pattern, timeoutMs = 30_000) {
      for (const line of lines) {
        const match = pattern.exec(line);
        if (match) return Promise.resolve(match);
      }
      return new Promise((resolve, reject) => {
        const waiter = {
          pattern,
          resolve: (m: RegExpMatchArray) => {
            clearTimeout(timer);
            resolve(m);
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(new Error(`no line matching ${pattern} in ${timeoutMs} ms; stderr: ${err.slice(-2000)}`));
        }, timeoutMs);
        waiters.add(waiter);
        void exited.then(({ code, signal }) => {
          if (!waiters.delete(waiter)) return;
          clearTimeout(timer);
          reject(new Error(`exited (${code ?? signal}) before a line matching ${pattern}; stderr: ${err.slice(-2000)}`));
        });
      });
    },
  };
}

export async function startCollector(dataDir: string, port: number): Promise<Proc & { url: string }> {
  const proc = start([process.execPath, COLLECTOR_BIN, 'serve', '--listen', `127.0.0.1:${port}`, '--data', dataDir, '--log-level', 'warn']);
  const match = await proc.waitLine(/listening on (\S+)/);
  return Object.assign(proc, { url: match[1]! });
}

/** Polls a condition (a state to reach, not a duration to wait) until it holds. */
export async function until<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
