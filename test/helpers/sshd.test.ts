// Checks the real-sshd test helper: a key login, a pty session seen in /proc and in the log, and a stop()
// that ends live sessions. Every wait is on an event (output, log line, exit) with a deadline.
import type { ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sshdAvailable, startSshd, type SshdHandle } from './sshd.ts';

const available = sshdAvailable();
// In the titles too, so a verbose report says why next to each skipped test.
const skipNote = available.ok ? '' : ` (skipped: ${available.reason})`;
if (!available.ok) {
  // oxlint-disable-next-line no-console -- the one line that says why real-sshd tests did not run
  console.warn(`sshd helper tests skipped: ${available.reason}`);
}

const DEADLINE_MS = 10_000;

describe.skipIf(!available.ok)(`sshd helper${skipNote}`, () => {
  let sshd: SshdHandle;

  beforeAll(async () => {
    sshd = await startSshd();
  });

  afterAll(async () => {
    await sshd?.stop();
  });

  it('runs a command over a key login and logs the login', async () => {
    const client = sshd.ssh('echo hello');
    const { code, stdout, stderr } = await finished(client, DEADLINE_MS);

    expect({ code, stdout, stderr }).toEqual({ code: 0, stdout: 'hello\n', stderr: '' });
    await sshd.waitForLog(/Accepted publickey for omwtest from 127\.0\.0\.1 port \d+ ssh2/, DEADLINE_MS);
  });

  it('opens a pty session whose sshd process is named USER@pts/N, and logs its disconnect', async () => {
    const from = sshd.logOffset();
    // The marker is printed by the session's shell, which runs only after sshd has renamed itself to @pts/N.
    const client = sshd.ssh('echo omw-session-up; exec sleep 30', { tty: true });
    await outputMatches(client, /omw-session-up/, DEADLINE_MS);

    const accepted = await sshd.waitForLog(/Accepted publickey for omwtest from 127\.0\.0\.1 port (\d+) ssh2/, DEADLINE_MS, { fromOffset: from });
    const child = await sshd.waitForLog(/User child is on pid (\d+)/, DEADLINE_MS, { fromOffset: accepted.endOffset });
    const sessionPid = Number(child.match[1]);
    const ptsSessions = processesWhoseCmdlineStartsWith('sshd: omwtest@pts/');
    expect(ptsSessions).toContain(sessionPid);

    const clientExit = finished(client, DEADLINE_MS);
    client.kill('SIGTERM');
    await clientExit;
    // SIGTERM lets the client send a disconnect; a SIGKILLed one is logged as "Connection closed by … port P".
    await sshd.waitForLog(new RegExp(`Disconnected from user omwtest 127\\.0\\.0\\.1 port ${accepted.match[1]}$`), DEADLINE_MS, { fromOffset: accepted.endOffset });
  });
});

describe.skipIf(!available.ok)(`sshd helper: stop()${skipNote}`, () => {
  it('ends live sessions, removes its files, and can be called twice', async () => {
    const own = await startSshd();
    try {
      const client = own.ssh('echo omw-session-up; exec sleep 30', { tty: true });
      await outputMatches(client, /omw-session-up/, DEADLINE_MS);
      const child = await own.waitForLog(/User child is on pid (\d+)/, DEADLINE_MS);
      const sessionPid = Number(child.match[1]);
      const clientExit = finished(client, DEADLINE_MS);

      await own.stop();

      expect(isGoneOrZombie(sessionPid)).toBe(true);
      expect(isGoneOrZombie(own.pid)).toBe(true);
      expect(existsSync(own.dir)).toBe(false);
      await clientExit;
    } finally {
      await own.stop();
    }
  });
});

describe.skipIf(!available.ok)(`sshd helper: UsePAM yes${skipNote}`, () => {
  it('gives the session a loginuid', async () => {
    const own = await startSshd({ usePam: true });
    try {
      const { code, stdout } = await finished(own.ssh('cat /proc/self/loginuid; echo; id -u'), DEADLINE_MS);
      const [loginuid, uid] = stdout.trim().split('\n');
      expect(code).toBe(0);
      expect(loginuid).toBe(uid);
    } finally {
      await own.stop();
    }
  });
});

/** Resolves once the client has exited and its output is drained; rejects at the deadline. */
function finished(client: ChildProcess, timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  client.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  client.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`ssh client still running after ${timeoutMs} ms; stdout ${JSON.stringify(stdout)}, stderr ${JSON.stringify(stderr)}`)), timeoutMs);
    client.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Resolves when the client's stdout matches; rejects if it exits first or at the deadline. */
function outputMatches(client: ChildProcess, pattern: RegExp, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const onData = (chunk: Buffer): void => {
      seen += chunk.toString('utf8');
      if (pattern.test(seen)) done();
    };
    const onExit = (): void => done(new Error(`ssh client exited before printing ${pattern}; got ${JSON.stringify(seen)}`));
    const timer = setTimeout(() => done(new Error(`no ${pattern} from the ssh client within ${timeoutMs} ms; got ${JSON.stringify(seen)}`)), timeoutMs);
    function done(err?: Error): void {
      clearTimeout(timer);
      client.stdout?.off('data', onData);
      client.off('exit', onExit);
      if (err) reject(err);
      else resolve();
    }
    client.stdout?.on('data', onData);
    client.once('exit', onExit);
  });
}

function processesWhoseCmdlineStartsWith(prefix: string): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').startsWith(prefix)) pids.push(Number(name));
    } catch {
      // Exited since the listing.
    }
  }
  return pids;
}

/** Pid 1 on this machine reaps orphans late, so an ended process may still show as a zombie. */
function isGoneOrZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}
