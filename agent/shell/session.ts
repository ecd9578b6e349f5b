// One recorded shell session, held by the daemon: the pty (and so every byte the user sees) lives in
// this root process, out of the user's reach. The pty relay's thread (relay.ts) puts output on the user's
// terminal at once and queues it; this class turns the queue into the recording, the live view and
// `shell_command` events, at its own pace: recording never delays what the user sees, and when it falls
// behind its limit the relay stops reading the pty (throttle) or the policy ends the session. The session
// ends when the shell exits, the user's connection drops, an analyst kills it, or the policy's idle or
// length limit passes.
import { chmodSync, chownSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { spawn, type IPty } from 'node-pty';
import { parseSshConnection } from '../sensors/sessions/parse.ts';
import type { Observation } from '../sensors/types.ts';
import type { Logger } from '../log/index.ts';
import { SHELL_TOOL, type PtyFrame } from '../../collector/protocol/index.ts';
import type { PasswdEntry } from './identity.ts';
import { parseCommandReport } from './marks.ts';
import { Recording } from './recording.ts';
import { PtyRelay, type RelayRecord } from './relay.ts';
import type { Hello, ShellPolicy } from './policy.ts';

/** After SIGHUP, what is still running in the session gets SIGKILL this much later. */
const KILL_GRACE_MS = 300;
const BEHIND_CHECK_MS = 100;
/** Keys from the client held while the shell takes none, at most: past it the connection is paused (and looked at every INPUT_PEEK_MS, so a client that goes away is noticed). */
const INPUT_QUEUE_PAUSE_BYTES = 4 * 1024 * 1024;
/** Past this many keys waiting, the session ends: the client keeps sending to a shell that takes nothing. */
const INPUT_QUEUE_MAX_BYTES = 16 * 1024 * 1024;
/** All sessions together may hold this many times one session's `maxRecordingLagMiB` of output not yet recorded. */
const RECORDING_LAG_SESSIONS = 2;
/** After the shell exits, how long the rest of its output may take to reach the user's terminal (the server waits 2 s for sessions to end when the agent stops). */
const DRAIN_LIMIT_MS = 1_500;

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
  /** The user's own terminal, opened by the daemon (relay.ts): output and keys then skip the client. */
  terminal: number | undefined;
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
  /** `terminal`: the relay writes to the user's terminal itself; the side then shows notices only. */
  started(sessionId: string, terminal: boolean): void;
  /** Shows output (only without a terminal); false when the user's side is behind (the pty is then not read until `drain`). */
  show(bytes: Buffer): boolean;
  onDrain(listener: () => void): void;
  /** The shell has room for keys again after `input` said no: take them from the user again. */
  resumeInput(): void;
  exit(code: number, endedBy: string): void;
}

export type EndedBy = 'exit' | 'hangup' | 'idle-timeout' | 'max-duration' | 'recording-behind' | 'input-overflow' | 'agent-stopped' | `analyst:${string}`;

export class ShellSession {
  readonly id: string;
  readonly startedAt: Date;
  readonly #context: SessionContext;
  readonly #side: UserSide;
  readonly #recording: Recording;
  readonly #ended: Promise<void>;
  #resolveEnded!: () => void;
  #pty: IPty | undefined;
  #relay: PtyRelay | undefined;
  #endedBy: EndedBy | undefined;
  #idleWarned = false;
  #lengthWarned = false;
  #timer: NodeJS.Timeout | undefined;
  /** The outbox is behind: the relay's queue is not taken (so it fills, and the pty is then not read). */
  #behindPoll: NodeJS.Timeout | undefined;
  #behindCheckedAt = 0;
  #throttleLogged = false;
  /** Resolves when the relay's last record ('x') is taken. */
  #drained: (() => void) | undefined;
  /** Records taken but not handled yet: the client's side was behind (handled again on its drain). */
  #pending: RelayRecord[] = [];
  /** Why the relay does not read the pty: the client's side is behind, the outbox is. */
  #clientBehind = false;
  #outboxBehind = false;
  /** Keys the relay said no to (it holds 1 MiB the shell has not taken), in order, until its 'w'. */
  #inputQueue: Buffer[] = [];
  #inputQueued = 0;
  #inputBlocked = false;
  #exited = false;

  constructor(context: SessionContext, side: UserSide) {
    this.id = context.id;
    this.#context = context;
    this.#side = side;
    this.startedAt = new Date();
    this.#ended = new Promise((resolve) => (this.#resolveEnded = resolve));
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
    // The relay's thread reads the pty from here on, through its own copy of the master. node-pty's
    // reader is closed before it ever reads (it would take bytes from the relay), and node-pty then
    // reports the shell's exit as soon as it happens; resizes and input go through the relay too.
    try {
      const { master, closeReader } = ptyInternals(pty);
      this.#relay = new PtyRelay({
        master, terminal: this.#context.terminal, mark, recordInput: this.#context.policy.recordInput,
        limitBytes: this.#context.policy.maxRecordingLagMiB * 1024 * 1024,
        totalLimitBytes: RECORDING_LAG_SESSIONS * this.#context.policy.maxRecordingLagMiB * 1024 * 1024,
        notify: () => this.#consume(),
      });
      closeReader();
      const ptsName = (pty as IPty & { ptsName?: string }).ptsName;
      // As login does: the user's terminal is the user's (screen, mesg and write check it), group tty.
      if (asOther && ptsName) giveTerminal(ptsName, user.uid);
      this.#emitSession('start', { ProcessId: pty.pid, ...(ptsName ? { Tty: ptsName.replace(/^\/dev\//, '') } : {}), Image: file });
      if (command) this.#emitCommand(command.map(quoteArg).join(' '), user.home);
      this.#side.started(this.id, this.#context.terminal !== undefined);
    } catch (error) {
      // Nothing of a session that did not start is left running: not the shell, not the relay's thread.
      this.#relay?.close();
      this.#relay?.take();
      pty.kill('SIGKILL');
      throw error;
    }
    if (this.#context.flagged) this.#notice(`this session is flagged (${this.#context.flagged}); the SOC is alerted`);
    pty.onExit(({ exitCode, signal }) => void this.#exit(exitCode, signal));
    this.#side.onDrain(() => {
      this.#clientBehind = false;
      this.#applyPause();
      this.#consume();
    });
    this.#timer = setInterval(() => this.#checkLimits(), 1_000);
    this.#timer.unref();
  }

  /**
   * Keys from the client's socket (a user without a terminal the relay could open). False: pause the
   * connection until resumeInput (the shell is INPUT_QUEUE_PAUSE_BYTES behind).
   */
  input(bytes: Buffer): boolean {
    if (this.#exited || !this.#relay) return true;
    if (!this.#inputBlocked) {
      this.#inputBlocked = !this.#relay.input(bytes);
      return true;
    }
    this.#inputQueue.push(bytes);
    this.#inputQueued += bytes.length;
    if (this.#inputQueued > INPUT_QUEUE_MAX_BYTES) {
      this.end('input-overflow', `the shell has taken none of the last ${Math.round(this.#inputQueued / 1024 / 1024)} MiB typed or sent; the session ends`);
    }
    return this.#inputQueued < INPUT_QUEUE_PAUSE_BYTES;
  }

  /** The relay has room for keys again: what waited goes first, then the client may send more. */
  #inputRoom(): void {
    this.#inputBlocked = false;
    while (this.#inputQueue.length > 0 && !this.#inputBlocked) {
      const bytes = this.#inputQueue.shift()!;
      this.#inputQueued -= bytes.length;
      this.#inputBlocked = !this.#relay!.input(bytes);
    }
    if (this.#inputQueued < INPUT_QUEUE_PAUSE_BYTES) this.#side.resumeInput();
  }

  #applyPause(): void {
    this.#relay?.pause(this.#clientBehind || this.#outboxBehind);
  }

  resize(cols: number, rows: number): void {
    if (this.#exited || this.#endedBy) return;
    this.#relay?.resize(cols, rows);
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
   * Takes what the relay queued: the recording, the live view, commands, and the client's output. When the
   * client's side is behind, the rest waits for its drain (and the relay is paused meanwhile).
   */
  #consume(): void {
    const relay = this.#relay;
    if (!relay || this.#behindPoll) return;
    if (!this.#exited && this.#recordingBehind()) return;
    // A take may hold a great many records (small writes in a flood): no spread, no shift per record.
    const records = this.#pending.length > 0 ? this.#pending.concat(relay.take()) : relay.take();
    let next = 0;
    while (next < records.length) {
      const record = records[next++]!;
      try {
        if (!this.#handle(record)) break;
      } catch (error) {
        // One record that cannot be handled (the outbox failing, say) is said, and the rest still are.
        this.#context.logger.error({ sessionId: this.id, record: record.type, err: (error as Error).message }, 'recorded shell: a record could not be handled');
      }
    }
    this.#pending = next < records.length ? records.slice(next) : [];
  }

  /** False when the client's side is behind: what follows waits for its drain. */
  #handle(record: RelayRecord): boolean {
    switch (record.type) {
      case 'o': {
        const shown = this.#context.terminal !== undefined || this.#side.show(record.bytes);
        const text = this.#recording.output(record.bytes, record.atMs);
        if (text.length > 0) this.#context.live({ type: 'pty', sessionId: this.id, t: this.#recording.elapsed(record.atMs), data: text });
        if (!shown && !this.#exited) {
          this.#clientBehind = true;
          this.#applyPause();
          return false;
        }
        break;
      }
      case 'i':
        this.#recording.input(record.bytes, record.atMs);
        break;
      case 'c': {
        const command = parseCommandReport(record.bytes);
        if (command) this.#emitCommand(command.commandLine, command.cwd);
        break;
      }
      case 'r':
        this.#recording.resize(record.cols, record.rows, record.atMs);
        break;
      case 'h':
        this.hangup();
        break;
      case 'w':
        this.#inputRoom();
        break;
      case 'x':
        this.#drained?.();
        break;
    }
    return true;
  }

  /** The agent's own words in the terminal (a warning): shown and recorded in order with the output. */
  #notice(text: string): void {
    this.#relay?.notice(Buffer.from(`\r\n[omwatch] ${text}\r\n`));
  }

  /**
   * The recording may not fall behind silently: with the outbox near its cap or the relay's queue at its
   * limit, policy throttles the session (the queue is not taken; the relay then stops reading the pty,
   * and the session's programs wait, as on a slow terminal) or ends it. True while throttled.
   */
  #recordingBehind(): boolean {
    const now = Date.now();
    if (now - this.#behindCheckedAt < BEHIND_CHECK_MS) return false;
    this.#behindCheckedAt = now;
    const outboxBehind = this.#context.recordingBehind();
    if (!outboxBehind && !this.#relay?.stats().behind) return false;
    if (this.#context.policy.onRecordingBehind === 'end') {
      this.end('recording-behind', 'the recording cannot keep up with this session\'s output; the session ends, as the policy says');
      return false;
    }
    if (!this.#throttleLogged) {
      this.#throttleLogged = true;
      this.#context.logger.warn({ sessionId: this.id, outboxBehind }, 'recording behind: output throttled until it catches up');
    }
    if (!outboxBehind) return false;
    // The relay stops reading now, not once its own queue is full.
    this.#outboxBehind = true;
    this.#applyPause();
    this.#behindPoll = setInterval(() => {
      if (!this.#exited && this.#context.recordingBehind()) return;
      clearInterval(this.#behindPoll);
      this.#behindPoll = undefined;
      this.#outboxBehind = false;
      this.#applyPause();
      this.#consume();
    }, BEHIND_CHECK_MS);
    this.#behindPoll.unref();
    return true;
  }

  #checkLimits(): void {
    const { policy, maxSessionMinutes } = this.#context;
    const now = Date.now();
    const warnMs = policy.warnBeforeSeconds * 1000;
    if (policy.idleMinutes !== undefined && this.#relay) {
      const limit = policy.idleMinutes * 60_000;
      const idle = now - this.#relay.stats().lastInputMs;
      // A key since the warning: the next idle spell is warned of again.
      if (idle < limit - warnMs) this.#idleWarned = false;
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
    clearInterval(this.#behindPoll);
    this.#behindPoll = undefined;
    const relay = this.#relay;
    if (relay) {
      // The rest of the shell's output (and of what else still writes to the pty) is read and shown, then
      // 'x'. A user's terminal that takes nothing for DRAIN_LIMIT_MS does not hold the session's end.
      await new Promise<void>((resolve) => {
        const limit = setTimeout(resolve, DRAIN_LIMIT_MS);
        this.#drained = () => {
          clearTimeout(limit);
          resolve();
        };
        relay.finish();
        this.#consume();
      });
      // What the thread queued before it stopped (its held bytes too) is still recorded.
      relay.close();
      this.#consume();
      const { lostBytes } = relay.stats();
      if (lostBytes > 0) this.#context.logger.error({ sessionId: this.id, lostBytes }, 'recorded shell: the agent ran out of memory during this session; this many bytes of its output are missing from the recording or the screen');
    }
    const code = signal ? 128 + signal : exitCode;
    try {
      this.#recording.close();
      this.#emitSession('end', {
        EndedBy: this.#endedBy ?? 'exit', ExitCode: code,
        DurationSeconds: Math.round((Date.now() - this.startedAt.getTime()) / 100) / 10,
        Chunks: this.#recording.stats.chunks, OutputBytes: this.#recording.stats.outputBytes,
      });
      this.#context.logger.info({ sessionId: this.id, user: this.user, endedBy: this.#endedBy ?? 'exit', exitCode: code }, 'recorded shell session ended');
    } finally {
      this.#side.exit(code, this.#endedBy ?? 'exit');
      this.#resolveEnded();
    }
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

/**
 * node-pty's master fd and its reader of it, which its types do not show (node-pty 1.1, unixTerminal.js:
 * `_fd`, `_socket`). The relay reads the master instead; a node-pty without them fails the session's start
 * loudly rather than leave two readers on one pty.
 */
function ptyInternals(pty: IPty): { master: number; closeReader: () => void } {
  const internals = pty as unknown as Record<string, unknown>;
  const master = internals['_fd'];
  const reader = internals['_socket'] as { destroy?: unknown } | undefined;
  if (typeof master !== 'number' || typeof reader?.destroy !== 'function') {
    throw new Error('this node-pty does not expose its master fd and reader (_fd, _socket) as 1.1 does: the pty relay cannot take the pty over');
  }
  return { master, closeReader: () => (reader.destroy as () => void).call(reader) };
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
