// A real terminal for tests: a node-pty running a command as a user would, with what it shows kept and
// waits on what appears in it (events, never sleeps).
import { chownSync, closeSync, openSync, constants as fsConstants } from 'node:fs';
import { spawn, type IPty } from 'node-pty';

export interface TerminalOptions {
  cols?: number;
  rows?: number;
  env?: Record<string, string>;
  cwd?: string;
  /** Run as this uid/gid (with its supplementary groups), via setpriv, when the test runs as root. */
  as?: { uid: number; gid: number };
  /** Give the terminal to the `as` user, as sshd and login do (else it stays the test's, root's). */
  ownTerminal?: boolean;
}

export class Terminal {
  readonly pty: IPty;
  /** Everything the terminal showed, as bytes read from it. */
  output = Buffer.alloc(0);
  readonly exited: Promise<{ exitCode: number; signal: number | undefined }>;
  readonly path: string | undefined;
  #waiters = new Set<() => void>();

  constructor(command: string[], options: TerminalOptions = {}) {
    const [file, ...args] = options.as
      ? ['/usr/bin/setpriv', '--reuid', String(options.as.uid), '--regid', String(options.as.gid), '--init-groups', '--', ...command]
      : command;
    this.pty = spawn(file!, args, {
      name: 'xterm-256color', cols: options.cols ?? 80, rows: options.rows ?? 24, encoding: null,
      cwd: options.cwd ?? '/', env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', TERM: 'xterm-256color', LANG: 'C.UTF-8', ...options.env },
    });
    // Held open, as script and sshd hold theirs: when the command (the only process on the terminal)
    // exits, Linux hangs the terminal up under output not read yet, which the test would then miss.
    const ptsName = (this.pty as IPty & { ptsName?: string }).ptsName;
    if (ptsName && options.as && options.ownTerminal) chownSync(ptsName, options.as.uid, options.as.gid);
    /** The terminal's device, as the programs in it see it (/dev/pts/N). */
    this.path = ptsName;
    const slave = ptsName ? openSync(ptsName, fsConstants.O_RDWR | fsConstants.O_NOCTTY) : undefined;
    this.pty.onData((data) => {
      this.output = Buffer.concat([this.output, data as unknown as Buffer]);
      for (const waiter of this.#waiters) waiter();
    });
    this.exited = new Promise((resolve) => this.pty.onExit(({ exitCode, signal }) => {
      if (slave !== undefined) closeSync(slave);
      resolve({ exitCode, signal });
      for (const waiter of this.#waiters) waiter();
    }));
  }

  text(from = 0): string {
    return this.output.subarray(from).toString('utf8');
  }

  /** Resolves with the offset just past the first match after `from`; rejects on timeout or exit. */
  waitFor(pattern: RegExp | string, from = 0, timeoutMs = 15_000): Promise<number> {
    return new Promise((resolve, reject) => {
      let exited = false;
      void this.exited.then(() => (exited = true));
      const check = () => {
        const text = this.text(from);
        const index = typeof pattern === 'string' ? text.indexOf(pattern) : text.search(pattern);
        if (index !== -1) {
          const length = typeof pattern === 'string' ? pattern.length : (pattern.exec(text)?.[0].length ?? 0);
          done();
          resolve(from + Buffer.byteLength(text.slice(0, index + length)));
          return;
        }
        if (exited) {
          done();
          reject(new Error(`terminal exited before showing ${pattern}; it showed: ${JSON.stringify(this.text(from).slice(-1500))}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`terminal did not show ${pattern} in ${timeoutMs} ms; it showed: ${JSON.stringify(this.text(from).slice(-1500))}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.#waiters.delete(check);
      };
      this.#waiters.add(check);
      check();
    });
  }

  write(data: string): void {
    this.pty.write(data);
  }

  kill(): void {
    try {
      this.pty.kill('SIGKILL');
    } catch {
      // Gone already.
    }
  }
}
