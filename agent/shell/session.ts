// One recorded shell session, held by the daemon: the pty (and so every byte the user sees) lives in
// this root process, out of the user's reach. Output goes to the user's terminal at once and into the
// recording; commands the shell reports become `shell_command` events; the session ends when the shell
// exits, the user's connection drops, an analyst kills it, or the policy's idle or length limit passes.
import { chmodSync, chownSync, closeSync, openSync, readdirSync, readFileSync, statSync, constants as fsConstants } from 'node:fs';
import { isIP } from 'node:net';
import { spawn, type IPty } from 'node-pty';
import { parseSshConnection } from '../sensors/sessions/parse.ts';
import type { Observation } from '../sensors/types.ts';
import type { Logger } from '../log/index.ts';
import { SHELL_TOOL, type PtyFrame } from '../../collector/protocol/index.ts';
import type { PasswdEntry } from './identity.ts';
import { CommandMarks } from './marks.ts';
import { Recording } from './recording.ts';
import type { Hello, ShellPolicy } from './policy.ts';

/** After SIGHUP, what is still running in the session gets SIGKILL this much later. */
const KILL_GRACE_MS = 300;
const BEHIND_CHECK_MS = 100;
/** While the pty is not read, this often the shell is checked for having exited. */
const EXIT_WATCH_MS = 20;

export interface SessionContext {
  id: string;
  /** The secret the shell's command reports carry. */
  mark: string;
  user: PasswdEntry;
  hello: Hello;
  policy: ShellPolicy;
  maxSessionMinutes: number | undefined;
  /** Set when the session starts although the policy gate said no (policy `flag`). */
  flagged: string | undefined;
  program: string;
  rcPath: string;
  /** Events the rules judge (session start and end, commands). */
  emit: (observation: Observation) => void;
  /** Recording chunks, straight to the outbox. */
  record: (observation: Observation<'session_recording'>) => void;
  live: (frame: PtyFrame) => void;
  /** True while the outbox is near its cap: the recording is behind what it can keep. */
  recordingBehind: () => boolean;
  logger: Logger;
}

/** Where the user sits: the shell client over the daemon's socket, or the terminal itself (spooled). */
export interface UserSide {
  started(sessionId: string): void;
  /** Shows output; false when the user's side is behind (the pty is then not read until `drain`). */
  show(bytes: Buffer): boolean;
  onDrain(listener: () => void): void;
  exit(code: number, endedBy: string): void;
}

export type EndedBy = 'exit' | 'hangup' | 'idle-timeout' | 'max-duration' | 'recording-behind' | 'agent-stopped' | `analyst:${string}`;

export class ShellSession {
  readonly id: string;
  readonly startedAt: Date;
  readonly #context: SessionContext;
  readonly #side: UserSide;
  readonly #recording: Recording;
  readonly #marks: CommandMarks;
  readonly #ended: Promise<void>;
  #resolveEnded!: () => void;
  #pty: IPty | undefined;
  #endedBy: EndedBy | undefined;
  #lastInputMs: number;
  #idleWarned = false;
  #lengthWarned = false;
  #timer: NodeJS.Timeout | undefined;
  /** Why the pty is not being read: the user's side is behind, or the recording is. */
  readonly #paused = new Set<'client' | 'recording'>();
  #pauseWatch: NodeJS.Timeout | undefined;
  /** Held open by the daemon so the pty does not hang up under unread output when the last process exits. */
  #slaveFd: number | undefined;
  #behindCheckedAt = 0;
  #heldTimer: NodeJS.Timeout | undefined;
  #reads: Buffer[] = [];
  #exited = false;

  constructor(context: SessionContext, side: UserSide) {
    this.id = context.id;
    this.#context = context;
    this.#side = side;
    this.startedAt = new Date();
    this.#lastInputMs = Date.now();
    this.#ended = new Promise((resolve) => (this.#resolveEnded = resolve));
    this.#marks = new CommandMarks(context.mark);
    this.#recording = new Recording({
      startMs: this.startedAt.getTime(),
      recordInput: context.policy.recordInput,
      write: ({ Chunk, Data }) => context.record({ category: 'session_recording', timeMs: Date.now(), fields: { SessionId: this.id, Chunk, Data } }),
    });
  }

  get user(): string {
    return this.#context.user.name;
  }

  /** Resolves once the session has ended and its end is recorded. */
  get ended(): Promise<void> {
    return this.#ended;
  }

  start(): void {
    const { user, hello, program, rcPath, mark } = this.#context;
    const asOther = process.getuid?.() === 0 && user.uid !== 0;
    const command = hello.command && hello.command.length > 0 ? hello.command : undefined;
    const shellArgs = command ?? (program.endsWith('/bash') ? ['--rcfile', rcPath, '-i'] : ['-l']);
    const file = command ? command[0]! : program;
    const args = command ? command.slice(1) : shellArgs;
    const env: Record<string, string> = {
      HOME: user.home, USER: user.name, LOGNAME: user.name, SHELL: program,
      PATH: user.uid === 0 ? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' : '/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games',
      TERM: hello.term, OMWATCH_SESSION: this.id, OMWATCH_MARK: mark,
      ...(hello.lang ? { LANG: hello.lang } : {}),
      ...(hello.ticket ? { OMWATCH_TICKET: hello.ticket } : {}),
    };
    // node-pty's setuid keeps root's supplementary groups; setpriv sets the user's own (--init-groups).
    // Before it, still root, the session gets its own audit login id (as pam_loginuid does at a login):
    // every process of the session inherits the audit session id and none can leave it, so a kill
    // finds what double-forked out of the terminal session too.
    const pty = asOther
      ? spawn('/bin/sh', ['-c', 'echo "$0" > /proc/self/loginuid 2>/dev/null; exec "$@"', String(user.uid), '/usr/bin/setpriv', '--reuid', String(user.uid), '--regid', String(user.gid), '--init-groups', '--', file, ...args], { name: hello.term, cols: hello.cols, rows: hello.rows, cwd: existingDir(user.home), env, encoding: null })
      : spawn(file, args, { name: hello.term, cols: hello.cols, rows: hello.rows, cwd: existingDir(user.home), env, encoding: null });
    this.#pty = pty;
    const ptsName = (pty as IPty & { ptsName?: string }).ptsName;
    if (ptsName) {
      try {
        this.#slaveFd = openSync(ptsName, fsConstants.O_RDWR | fsConstants.O_NOCTTY | fsConstants.O_NONBLOCK);
      } catch (error) {
        this.#context.logger.warn({ sessionId: this.id, err: (error as Error).message }, 'cannot hold the terminal open: the last output of a command may be cut');
      }
    }
    // As login does: the user's terminal is the user's (screen, mesg and write check it), group tty.
    if (asOther && ptsName) giveTerminal(ptsName, user.uid);
    this.#emitSession('start', { ProcessId: pty.pid, ...(ptsName ? { Tty: ptsName.replace(/^\/dev\//, '') } : {}), Image: file });
    if (command) this.#emitCommand(command.map(quoteArg).join(' '), user.home);
    this.#side.started(this.id);
    if (this.#context.flagged) this.#notice(`this session is flagged (${this.#context.flagged}); the SOC is alerted`);
    pty.onData((data) => this.#read(data as unknown as Buffer));
    pty.onExit(({ exitCode, signal }) => void this.#exit(exitCode, signal));
    this.#side.onDrain(() => this.#resume('client'));
    this.#timer = setInterval(() => this.#checkLimits(), 1_000);
    this.#timer.unref();
  }

  input(bytes: Buffer): void {
    if (this.#exited) return;
    this.#lastInputMs = Date.now();
    this.#idleWarned = false;
    this.#recording.input(bytes);
    this.#pty?.write(bytes);
  }

  resize(cols: number, rows: number): void {
    if (this.#exited || this.#endedBy) return;
    try {
      this.#pty?.resize(cols, rows);
    } catch {
      // The shell is exiting and node-pty has closed the terminal: nothing left to resize.
      return;
    }
    this.#recording.resize(cols, rows);
  }

  /** Ends the session: a message in the terminal, SIGHUP to everything in it, SIGKILL to what stays. */
  end(by: EndedBy, message?: string): void {
    if (this.#endedBy || !this.#pty || this.#exited) return;
    this.#endedBy = by;
    if (message) this.#notice(message);
    // Everything of the session: its members, and descendants that left it (setsid) while their parent
    // lived. SIGHUP first, as a hangup would; after the grace, SIGKILL to all that is left, whether or not
    // the shell has gone already (what ignores SIGHUP, nohup, outlives it).
    const shell = this.#pty.pid;
    const auditSession = auditSessionOf(shell);
    const targets = sessionProcesses(shell, auditSession);
    signalAll(targets, 'SIGHUP');
    setTimeout(() => signalAll(new Set([...targets, ...sessionProcesses(shell, auditSession)].filter((pid) => pid !== shell || !this.#exited)), 'SIGKILL'), KILL_GRACE_MS).unref();
  }

  /** The user's side went away (ssh dropped): a hangup, as for any terminal. */
  hangup(): void {
    this.end('hangup');
  }

  /**
   * A read of the pty (4 KiB at most: the line discipline's buffer). Reads that arrive together are
   * handled together, once the event loop has taken them all: one frame to the user, one recording event.
   */
  #read(data: Buffer): void {
    this.#reads.push(data);
    if (this.#reads.length === 1) setImmediate(() => this.#output());
  }

  #output(): void {
    if (this.#reads.length === 0) return;
    const data = this.#reads.length === 1 ? this.#reads[0]! : Buffer.concat(this.#reads);
    this.#reads = [];
    clearTimeout(this.#heldTimer);
    const { output, commands } = this.#marks.scan(data);
    for (const command of commands) this.#emitCommand(command.commandLine, command.cwd);
    if (output.length > 0) this.#show(output);
    // A byte held back as a possible start of a command report shows anyway if nothing follows soon.
    if (this.#marks.holding) {
      this.#heldTimer = setTimeout(() => {
        const held = this.#marks.release();
        if (held) this.#show(held);
      }, 20);
      this.#heldTimer.unref();
    }
    this.#checkBehind();
  }

  #show(bytes: Buffer): void {
    // The user's terminal first: recording it never delays what the user sees.
    if (!this.#side.show(bytes)) this.#pause('client');
    const text = this.#recording.output(bytes);
    if (text.length > 0) this.#context.live({ type: 'pty', sessionId: this.id, t: this.#recording.elapsed(), data: text });
  }

  #notice(text: string): void {
    const line = `\r\n[omwatch] ${text}\r\n`;
    this.#recording.notice(line);
    this.#side.show(Buffer.from(line));
    this.#context.live({ type: 'pty', sessionId: this.id, t: this.#recording.elapsed(), data: line });
  }

  /** The recording may not fall behind silently: policy throttles the session or ends it. */
  #checkBehind(): void {
    const now = Date.now();
    if (now - this.#behindCheckedAt < BEHIND_CHECK_MS) return;
    this.#behindCheckedAt = now;
    if (!this.#context.recordingBehind()) return;
    if (this.#context.policy.onRecordingBehind === 'end') {
      this.end('recording-behind', 'the recording cannot keep up with this session\'s output (the agent\'s buffer is full); the session ends, as the policy says');
      return;
    }
    if (this.#paused.has('recording')) return;
    this.#pause('recording');
    this.#context.logger.warn({ sessionId: this.id }, 'recording behind: output throttled until the buffer drains');
    const poll = setInterval(() => {
      if (this.#exited || !this.#context.recordingBehind()) {
        clearInterval(poll);
        this.#resume('recording');
      }
    }, BEHIND_CHECK_MS);
    poll.unref();
  }

  /**
   * Stops reading the pty (so the program blocks on its writes, as on a slow terminal). Once the shell
   * has exited, what it left in the pty is read whatever the reason: it is little (the kernel's buffer),
   * and node-pty closes the pty shortly after the exit.
   */
  #pause(reason: 'client' | 'recording'): void {
    const pty = this.#pty;
    if (!pty || this.#paused.has(reason)) return;
    this.#paused.add(reason);
    if (this.#paused.size > 1) return;
    pty.pause();
    this.#pauseWatch = setInterval(() => {
      if (!processGone(pty.pid)) return;
      this.#paused.clear();
      clearInterval(this.#pauseWatch);
      pty.resume();
    }, EXIT_WATCH_MS);
    this.#pauseWatch.unref();
  }

  #resume(reason: 'client' | 'recording'): void {
    if (!this.#paused.delete(reason) || this.#paused.size > 0) return;
    clearInterval(this.#pauseWatch);
    this.#pty?.resume();
  }

  #checkLimits(): void {
    const { policy, maxSessionMinutes } = this.#context;
    const now = Date.now();
    const warnMs = policy.warnBeforeSeconds * 1000;
    if (policy.idleMinutes !== undefined) {
      const limit = policy.idleMinutes * 60_000;
      const idle = now - this.#lastInputMs;
      if (idle >= limit) return this.end('idle-timeout', `no input for ${formatDuration(limit)}: the session ends (policy shell.idleMinutes)`);
      if (!this.#idleWarned && idle >= limit - warnMs) {
        this.#idleWarned = true;
        this.#notice(`no input for ${formatDuration(idle)}: this session ends in ${formatDuration(limit - idle)} unless you type something`);
      }
    }
    if (maxSessionMinutes !== undefined) {
      const limit = maxSessionMinutes * 60_000;
      const age = now - this.startedAt.getTime();
      if (age >= limit) return this.end('max-duration', `the session reached its maximum length of ${formatDuration(limit)} and ends (policy maxSessionMinutes)`);
      if (!this.#lengthWarned && age >= limit - warnMs) {
        this.#lengthWarned = true;
        this.#notice(`this session reaches its maximum length in ${formatDuration(limit - age)} and then ends`);
      }
    }
  }

  async #exit(exitCode: number, signal: number | undefined): Promise<void> {
    this.#exited = true;
    clearInterval(this.#timer);
    clearInterval(this.#pauseWatch);
    if (this.#slaveFd !== undefined) closeSync(this.#slaveFd);
    this.#output();
    clearTimeout(this.#heldTimer);
    const held = this.#marks.release();
    if (held) this.#show(held);
    const code = signal ? 128 + signal : exitCode;
    this.#recording.close();
    this.#emitSession('end', {
      EndedBy: this.#endedBy ?? 'exit', ExitCode: code,
      DurationSeconds: Math.round((Date.now() - this.startedAt.getTime()) / 100) / 10,
      Chunks: this.#recording.stats.chunks, OutputBytes: this.#recording.stats.outputBytes,
    });
    this.#context.logger.info({ sessionId: this.id, user: this.user, endedBy: this.#endedBy ?? 'exit', exitCode: code }, 'recorded shell session ended');
    this.#side.exit(code, this.#endedBy ?? 'exit');
    this.#resolveEnded();
  }

  #emitSession(action: 'start' | 'end', extra: Record<string, unknown>): void {
    const { user, hello, flagged } = this.#context;
    // SSH_CONNECTION as the client reports it, parsed as the session sensor parses it; only an address counts.
    const reported = parseSshConnection(hello.sshConnection);
    const ssh = reported && isIP(reported.clientIp) ? { sourceIp: reported.clientIp, sourcePort: reported.clientPort, localPort: reported.serverPort } : undefined;
    this.#context.emit({
      category: 'remote_session', timeMs: Date.now(),
      fields: {
        SessionId: this.id, Action: action, Protocol: ssh ? 'ssh' : 'local', Tool: SHELL_TOOL, User: user.name,
        ...(ssh ? { SourceIp: ssh.sourceIp, SourcePort: ssh.sourcePort, LocalPort: ssh.localPort } : {}),
        ...(hello.ticket ? { Ticket: hello.ticket } : {}),
        StartTime: this.startedAt.toISOString(),
        ...(action === 'start' ? {
          Width: hello.cols, Height: hello.rows, Term: hello.term,
          ...(hello.reason ? { Reason: hello.reason } : {}),
          ...(flagged ? { Flagged: true, Reason: hello.reason ? `${hello.reason} (flagged: ${flagged})` : `flagged: ${flagged}` } : {}),
        } : {}),
        ...extra,
      } as Observation<'remote_session'>['fields'],
    });
  }

  #emitCommand(commandLine: string, cwd: string): void {
    const { hello } = this.#context;
    this.#context.emit({
      category: 'shell_command', timeMs: Date.now(),
      fields: { SessionId: this.id, CommandLine: commandLine, User: this.user, CurrentDirectory: cwd, ...(hello.ticket ? { Ticket: hello.ticket } : {}) },
    });
  }
}

/** Whether a process has exited (gone, or a zombie not yet reaped). */
function processGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat[stat.lastIndexOf(')') + 2] === 'Z';
  } catch {
    return true;
  }
}

const NO_AUDIT_SESSION = 4_294_967_295;

/** The audit session id of a process of the session, if it has one of its own (not the daemon's). */
function auditSessionOf(pid: number): number | undefined {
  try {
    const id = Number(readFileSync(`/proc/${pid}/sessionid`, 'latin1'));
    const own = Number(readFileSync('/proc/self/sessionid', 'latin1'));
    return Number.isInteger(id) && id !== NO_AUDIT_SESSION && id !== own ? id : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The processes of a shell's session, by one pass over /proc: its audit session's (which no process can
 * leave), those whose terminal session id is the shell's pid, and every descendant of them.
 */
function sessionProcesses(sid: number, auditSession: number | undefined): Set<number> {
  const children = new Map<number, number[]>();
  const members = new Set<number>([sid]);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      // Fields after the command name (which may hold spaces and parentheses): state ppid pgrp session …
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const pid = Number(entry);
      const ppid = Number(fields[1]);
      if (Number(fields[3]) === sid) members.add(pid);
      if (auditSession !== undefined && Number(readFileSync(`/proc/${entry}/sessionid`, 'latin1')) === auditSession) members.add(pid);
      const siblings = children.get(ppid);
      if (siblings) siblings.push(pid);
      else children.set(ppid, [pid]);
    } catch {
      // Gone meanwhile.
    }
  }
  const all = new Set<number>();
  const visit = (pid: number) => {
    if (all.has(pid)) return;
    all.add(pid);
    for (const child of children.get(pid) ?? []) visit(child);
  };
  for (const pid of members) visit(pid);
  return all;
}

/** Signals each process; one already gone is skipped. A pid never reaches 1 or 0 here (not in a shell's tree). */
function signalAll(pids: Set<number>, signal: NodeJS.Signals): void {
  for (const pid of pids) {
    if (pid <= 1) continue;
    try {
      process.kill(pid, signal);
    } catch {
      // Gone meanwhile.
    }
  }
}

function giveTerminal(path: string, uid: number): void {
  try {
    const group = readFileSync('/etc/group', 'utf8').split('\n').find((line) => line.startsWith('tty:'));
    const gid = Number(group?.split(':')[2]);
    chownSync(path, uid, Number.isInteger(gid) ? gid : -1);
    chmodSync(path, 0o620);
  } catch {
    // The terminal works without it; only programs that check its owner (screen) complain.
  }
}

function existingDir(path: string): string {
  try {
    return statSync(path).isDirectory() ? path : '/';
  } catch {
    return '/';
  }
}

function quoteArg(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

function formatDuration(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  return seconds >= 120 ? `${Math.round(seconds / 60)} min` : `${seconds} s`;
}
