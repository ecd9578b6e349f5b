// `omwatch-agent shell`: the user's side of a recorded session. It proves the user's uid when asked
// (identity.ts), names the terminal it runs in, and puts that terminal in raw mode, so keys, signals
// (Ctrl-C, Ctrl-Z) and job control reach the shell's own line discipline as in any terminal. The daemon
// runs the shell in a pty it owns; when the terminal is the user's own, the daemon's pty relay reads and
// writes it directly (relay.ts) and this process only passes window sizes and waits for the exit code.
// Otherwise it relays: the terminal's bytes to the daemon, and the pty's output back.
import { spawnSync } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { answerChallenge, type Challenge } from './identity.ts';
import { encodeFrame, Frame, jsonPayload, readFrames } from './frames.ts';
import type { Hello } from './policy.ts';

export interface ShellClientOptions {
  socketPath: string;
  ticket?: string;
  reason?: string;
  command?: string[];
  /** What to do when the daemon cannot be reached (asked only then: it reads the policy). */
  whenDaemonDown: () => Promise<'refuse' | 'spool'>;
  /** Runs the session without the daemon (best effort), when policy allows. */
  spool?: (hello: Hello) => Promise<number>;
}

/** What the session asks for, from the options and this process's terminal and environment. */
export function helloFromEnvironment(options: Pick<ShellClientOptions, 'ticket' | 'reason' | 'command'>): Hello {
  const env = process.env;
  const command = options.command ?? (env['SSH_ORIGINAL_COMMAND'] ? ['/bin/sh', '-c', env['SSH_ORIGINAL_COMMAND']] : undefined);
  return {
    cols: process.stdout.columns || 80, rows: process.stdout.rows || 24,
    term: /^[A-Za-z0-9._+-]{1,64}$/.test(env['TERM'] ?? '') ? env['TERM']! : 'xterm',
    ...(env['LANG'] && /^[A-Za-z0-9._@-]{1,64}$/.test(env['LANG']) ? { lang: env['LANG'] } : {}),
    ...(options.ticket ? { ticket: options.ticket } : {}),
    ...(options.reason ? { reason: options.reason } : {}),
    ...(command ? { command } : {}),
    ...(terminalPath() ? { terminal: terminalPath() } : {}),
    ...(env['SSH_CONNECTION'] ? { sshConnection: env['SSH_CONNECTION'] } : {}),
  };
}

/** The terminal this process reads and writes, when its stdin and stdout are one and the same terminal. */
function terminalPath(): string | undefined {
  if (!process.stdin.isTTY || !process.stdout.isTTY) return undefined;
  try {
    const input = readlinkSync('/proc/self/fd/0');
    return input === readlinkSync('/proc/self/fd/1') && input.length <= 64 ? input : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Puts this process's terminal in raw mode as ssh and script do; returns what restores it. Node's raw
 * mode keeps output processing (\n → \r\n), which would change the bytes the shell writes; -opost
 * passes them through as they are.
 */
export function rawTerminal(): () => void {
  const { stdin } = process;
  if (!stdin.isTTY) return () => {};
  const saved = stty(['-g'])?.trim();
  stdin.setRawMode(true);
  stty(['-opost']);
  return () => {
    stdin.setRawMode(false);
    if (saved) stty([saved]);
  };
}

/** How long the client waits, after its hello, for the daemon to start the session or refuse it. */
const HANDSHAKE_TIMEOUT_MS = 30_000;

/** Resolves to the exit code the user's command should end with. */
export async function runShellClient(options: ShellClientOptions): Promise<number> {
  const { stdin, stdout, stderr } = process;
  const hello = helloFromEnvironment(options);
  const socket = await connectOrNull(options.socketPath);
  if (!socket) {
    if ((await options.whenDaemonDown()) === 'spool' && options.spool) {
      stderr.write('omwatch: the agent is not running; this session is recorded to the spool and delivered when it is back (best effort: policy shell.whenDaemonDown: spool)\n');
      return options.spool(hello);
    }
    stderr.write(`omwatch: the omwatch agent is not running (no ${options.socketPath}), and sessions on this host must be recorded: refused (policy shell.whenDaemonDown: refuse). Ask the plant's IT to start it.\n`);
    return 1;
  }

  return await new Promise<number>((resolve) => {
    let restore: (() => void) | undefined;
    let started = false;
    let handshake: NodeJS.Timeout | undefined;
    let exitCode: number | undefined;
    let paused = false;
    let output: Buffer[] = [];
    const writeOutput = () => {
      if (output.length === 0) return;
      const bytes = output.length === 1 ? output[0]! : Buffer.concat(output);
      output = [];
      if (!stdout.write(bytes) && !paused) {
        // The terminal is behind: stop reading, and so the daemon stops reading the pty.
        paused = true;
        socket.pause();
        stdout.once('drain', () => {
          paused = false;
          socket.resume();
        });
      }
    };
    const onInput = (data: Buffer) => {
      // Piped input faster than the session takes it waits here, not in this process's memory.
      if (!socket.write(encodeFrame(Frame.INPUT, data))) {
        stdin.pause();
        socket.once('drain', () => stdin.resume());
      }
    };
    const onResize = () => socket.write(encodeFrame(Frame.RESIZE, { cols: stdout.columns || 80, rows: stdout.rows || 24 }));
    const finish = (code: number) => {
      clearTimeout(handshake);
      stdin.off('data', onInput);
      stdout.off('resize', onResize);
      restore?.();
      stdin.pause();
      resolve(code);
    };
    readFrames(socket, (frame) => {
      switch (frame.type) {
        case Frame.CHALLENGE:
          try {
            answerChallenge(jsonPayload(frame.payload) as Challenge);
          } catch (error) {
            stderr.write(`omwatch: cannot prove who you are to the agent: ${(error as Error).message}\n`);
          }
          // Raw before the session starts: when the daemon writes to this terminal itself, its first
          // bytes may come before the STARTED frame does. A refusal puts the terminal back first.
          restore = rawTerminal();
          socket.write(encodeFrame(Frame.HELLO, hello));
          // Raw, Ctrl-C cannot end a handshake that hangs: the client gives up by itself.
          handshake = setTimeout(() => {
            stderr.write(`omwatch: the agent did not start the session within ${HANDSHAKE_TIMEOUT_MS / 1000} s; giving up\r\n`);
            socket.destroy();
          }, HANDSHAKE_TIMEOUT_MS);
          break;
        case Frame.STARTED: {
          started = true;
          clearTimeout(handshake);
          // The daemon opened this terminal itself: it reads the keys and writes the output directly.
          const direct = (jsonPayload(frame.payload) as { terminal?: unknown } | undefined)?.terminal === true;
          if (!direct) {
            stdin.on('data', onInput);
            stdin.resume();
          }
          stdout.on('resize', onResize);
          break;
        }
        case Frame.OUTPUT:
          // Output frames that arrive together are written together, once they are all read.
          output.push(frame.payload);
          if (output.length === 1) queueMicrotask(writeOutput);
          break;
        case Frame.NOTICE:
          if (!started) {
            restore?.();
            restore = undefined;
          }
          if (output.length > 0) writeOutput();
          stderr.write(frame.payload);
          break;
        case Frame.EXIT: {
          const value = jsonPayload(frame.payload) as { code?: unknown } | undefined;
          exitCode = typeof value?.code === 'number' && Number.isInteger(value.code) ? value.code : 1;
          break;
        }
      }
    }, (message) => stderr.write(`omwatch: the agent daemon sent a bad frame: ${message}\n`));
    socket.on('error', () => {});
    socket.on('close', () => {
      if (exitCode === undefined) stderr.write('\r\nomwatch: the connection to the agent was lost; the session has ended\r\n');
      // Output written before the close reaches the terminal before the process exits.
      stdout.write('', () => finish(exitCode ?? 1));
    });
  });
}

/** Runs stty on this process's terminal (its stdin); its output, or undefined if it failed. */
function stty(args: string[]): string | undefined {
  const result = spawnSync('stty', args, { stdio: ['inherit', 'pipe', 'ignore'], encoding: 'utf8', timeout: 5_000 });
  return result.status === 0 ? result.stdout : undefined;
}

function connectOrNull(path: string): Promise<Socket | undefined> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => resolve(socket));
    socket.once('error', () => resolve(undefined));
  });
}
