// The daemon's side of the recorded shell: a Unix socket that `omwatch-agent shell` connects to. Each
// connection proves its uid (identity.ts), passes the policy gate, and gets a session whose pty and
// recording stay in this process. Sessions are listed to the collector (for kills and the live view).
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { v7 as uuidv7 } from 'uuid';
import { SHELL_TOOL, type PtyFrame } from '../../collector/protocol/index.ts';
import type { PolicyJudge } from '../enrich/policy.ts';
import type { Logger } from '../log/index.ts';
import type { Observation } from '../sensors/types.ts';
import { encodeFrame, Frame, jsonPayload, readFrames } from './frames.ts';
import { checkChallenge, IdentityError, lookupUser, newChallenge, prepareChallengeDir, removeAnswer, type PasswdEntry } from './identity.ts';
import { BASH_RC } from './marks.ts';
import { DEFAULT_SHELL_POLICY, HelloSchema, type Hello } from './policy.ts';
import { ShellSession, type UserSide } from './session.ts';
import { openUserTerminal } from './relay.ts';
import { prepareSpoolDir, takeSpool, type SpoolIntake } from './spool.ts';

/** A client that has not said hello by then is dropped. */
const HELLO_TIMEOUT_MS = 10_000;
const SPOOL_SCAN_MS = 2_000;
/** Connections that have not proven who they are yet, at most; past it new ones are closed at once. */
const MAX_UNPROVEN_CONNECTIONS = 64;
/** Live sessions one user may hold at once. */
const MAX_SESSIONS_PER_USER = 16;
/** After the last frame has reached a client, how long it has to close before its connection is cut. */
const CLOSE_GRACE_MS = 2_000;
/** A client that has not taken the last of its output by then is cut (it stopped reading). */
const UNREAD_LIMIT_MS = 60_000;
/** While a client's keys are not read (the shell takes none), its connection is looked at this often. */
const INPUT_PEEK_MS = 1_000;
/** Past this much output waiting for the client, the pty is not read until it drains. */
const MAX_CLIENT_BUFFER_BYTES = 256 * 1024;

/**
 * Ends a client connection once everything written has reached the client, and cuts it if the client
 * does not close its side soon after (or does not read at all for a long while).
 */
function endSoon(socket: Socket): void {
  socket.end(() => setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref());
  setTimeout(() => socket.destroy(), UNREAD_LIMIT_MS).unref();
}

/** The shell client on the other end of the socket, as the session's user side. */
function socketSide(socket: Socket): UserSide {
  const send = (type: (typeof Frame)[keyof typeof Frame], payload: Buffer | object): boolean => {
    if (socket.destroyed) return true;
    socket.write(encodeFrame(type, payload));
    return socket.writableLength < MAX_CLIENT_BUFFER_BYTES;
  };
  return {
    started: (sessionId, terminal) => void send(Frame.STARTED, { sessionId, terminal }),
    show: (bytes) => send(Frame.OUTPUT, bytes),
    onDrain: (listener) => void socket.on('drain', listener),
    resumeInput: () => void socket.resume(),
    exit(code, endedBy) {
      send(Frame.EXIT, { code, endedBy });
      endSoon(socket);
    },
  };
}

export interface ShellServerOptions {
  socketPath: string;
  /** Where shells spool sessions while the daemon is down; taken in at start and every SPOOL_SCAN_MS. */
  spoolDir: string;
  judge: () => PolicyJudge | undefined;
  emit: (observation: Observation) => void;
  record: (observation: Observation<'session_recording'>) => void;
  live: (frame: PtyFrame) => void;
  recordingBehind: () => boolean;
  logger: Logger;
}

export interface LiveSession {
  sessionId: string;
  user: string;
  startedAt: string;
}

export class ShellServer {
  readonly counters = { connections: 0, started: 0, refused: 0, unproven: 0, tooMany: 0, errors: 0 };
  #unprovenConnections = 0;
  readonly #options: ShellServerOptions;
  readonly #sessions = new Map<string, ShellSession>();
  readonly #authDir: string;
  readonly #rcPath: string;
  #server: Server | undefined;
  #onChange: (() => void) | undefined;
  #spoolTimer: NodeJS.Timeout | undefined;

  constructor(options: ShellServerOptions) {
    this.#options = options;
    const dir = dirname(options.socketPath);
    this.#authDir = join(dir, 'auth');
    this.#rcPath = join(dir, 'bashrc');
  }

  /** Called whenever a session starts or ends. */
  onChange(listener: () => void): void {
    this.#onChange = listener;
  }

  live(): LiveSession[] {
    return [...this.#sessions.values()].map((s) => ({ sessionId: s.id, user: s.user, startedAt: s.startedAt.toISOString() }));
  }

  async start(): Promise<void> {
    const { socketPath } = this.#options;
    const dir = dirname(socketPath);
    // Made here (/run/omwatch): opened up explicitly, as the agent runs with umask 077 and users must reach
    // the socket in it. A folder that exists keeps the mode its owner gave it.
    if (mkdirSync(dir, { recursive: true, mode: 0o755 }) !== undefined) chmodSync(dir, 0o755);
    prepareChallengeDir(this.#authDir);
    writeFileSync(this.#rcPath, BASH_RC, { mode: 0o644 });
    chmodSync(this.#rcPath, 0o644);
    // A socket file left by a daemon that died is in the way; this daemon owns the path.
    rmSync(socketPath, { force: true });
    const server = createServer((socket) => this.#connection(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#server = server;
    server.on('error', (error) => this.#options.logger.error({ err: error.message }, 'shell socket error'));
    try {
      // Anyone may connect: who they are is proven next, never assumed from being able to connect.
      chmodSync(socketPath, 0o666);
      prepareSpoolDir(this.#options.spoolDir);
    } catch (error) {
      await this.stop();
      throw error;
    }
    this.#takeSpool();
    this.#spoolTimer = setInterval(() => this.#takeSpool(), SPOOL_SCAN_MS);
    this.#spoolTimer.unref();
    this.#options.logger.info({ socket: socketPath }, 'recorded shell: listening');
  }

  #takeSpool(): void {
    const { emit, record, logger, spoolDir } = this.#options;
    const intake: SpoolIntake = {
      emit, record, logger,
      rejected: (file, reason) => {
        logger.error({ file, reason }, 'a spooled session was set aside: it does not check');
        emit({ category: 'agent', timeMs: Date.now(), fields: { Action: 'sensor_error', Sensor: 'shell-spool', Path: `${file}.rejected`, Message: `spooled session set aside: ${reason}` } });
      },
    };
    try {
      takeSpool(spoolDir, intake);
    } catch (error) {
      // The spool folder itself is unreadable or gone: said, and tried again at the next scan.
      logger.error({ err: (error as Error).message, spoolDir }, 'cannot take in the spool');
    }
  }

  kill(sessionId: string, by: string): boolean {
    const session = this.#sessions.get(sessionId);
    if (!session) return false;
    this.#options.logger.warn({ sessionId, by }, 'recorded shell session killed');
    session.end(`analyst:${by.replace(/^analyst:/, '')}`, `this session was ended by the SOC (${by.replace(/^analyst:/, '')})`);
    return true;
  }

  /** Ends every session (recorded as ended by the agent stopping) and closes the socket. */
  async stop(): Promise<void> {
    clearInterval(this.#spoolTimer);
    const ended = [...this.#sessions.values()].map((session) => {
      session.end('agent-stopped', 'the omwatch agent is stopping; this session ends');
      return session.ended;
    });
    await Promise.race([Promise.all(ended), new Promise((resolve) => setTimeout(resolve, 2_000).unref())]);
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
    rmSync(this.#options.socketPath, { force: true });
  }

  #connection(socket: Socket): void {
    this.counters.connections++;
    const { logger } = this.#options;
    socket.on('error', () => socket.destroy());
    if (this.#unprovenConnections >= MAX_UNPROVEN_CONNECTIONS) {
      this.counters.tooMany++;
      socket.destroy();
      return;
    }
    this.#unprovenConnections++;
    let proven = false;
    const proved = () => {
      if (proven) return;
      proven = true;
      this.#unprovenConnections--;
    };
    const challenge = newChallenge(this.#authDir);
    let session: ShellSession | undefined;
    let helloSeen = false;
    let peek: NodeJS.Timeout | undefined;
    let heldBack = false;
    const fail = (message: string, code = 1) => {
      socket.write(encodeFrame(Frame.NOTICE, `omwatch: ${message}\n`));
      socket.write(encodeFrame(Frame.EXIT, { code, endedBy: 'refused' }));
      endSoon(socket);
    };
    const timer = setTimeout(() => {
      if (!helloSeen) socket.destroy();
    }, HELLO_TIMEOUT_MS);
    timer.unref();
    socket.on('close', () => {
      clearTimeout(timer);
      clearTimeout(peek);
      proved();
      if (!helloSeen) removeAnswer(challenge.path);
      session?.hangup();
    });
    const onFrame = (frame: { type: number; payload: Buffer }) => {
      if (session) {
        // A client that sends keys faster than the shell takes them is not read until it does, but for a
        // look every INPUT_PEEK_MS: a paused socket would not see the client go away.
        if (frame.type === Frame.INPUT && !session.input(frame.payload)) {
          if (!heldBack) logger.warn({ sessionId: session.id }, 'recorded shell: the client sends keys faster than the shell takes them; its connection is held back');
          heldBack = true;
          socket.pause();
          clearTimeout(peek);
          peek = setTimeout(() => socket.resume(), INPUT_PEEK_MS);
          peek.unref();
        } else if (frame.type === Frame.RESIZE) {
          const size = HelloSchema.pick({ cols: true, rows: true }).safeParse(jsonPayload(frame.payload));
          if (size.success) session.resize(size.data.cols, size.data.rows);
        }
        return;
      }
      if (helloSeen || frame.type !== Frame.HELLO) return;
      helloSeen = true;
      clearTimeout(timer);
      proved();
      let user: PasswdEntry;
      try {
        user = lookupUser(checkChallenge(challenge));
      } catch (error) {
        if (!(error instanceof IdentityError)) throw error;
        this.counters.unproven++;
        logger.warn({ err: error.message }, 'shell client did not prove who it is');
        return fail(error.message);
      }
      const hello = HelloSchema.safeParse(jsonPayload(frame.payload));
      if (!hello.success) {
        const issue = hello.error.issues[0];
        return fail(`the shell's request is invalid: ${issue ? `${issue.path.join('.')}: ${issue.message}` : 'not JSON'}`, 2);
      }
      session = this.#open(socket, user, hello.data, fail);
    };
    readFrames(socket, (frame) => {
      try {
        onFrame(frame);
      } catch (error) {
        // One connection's fault (or ours) ends that connection, never the agent and its other sessions.
        this.counters.errors++;
        logger.error({ err: (error as Error).message, sessionId: session?.id }, 'shell connection failed');
        if (session) session.hangup();
        else fail(`the agent could not serve this connection: ${(error as Error).message}`);
      }
    }, (message) => logger.warn({ err: message }, 'shell client sent a bad frame'));
    socket.write(encodeFrame(Frame.CHALLENGE, { path: challenge.path, secret: challenge.secret }));
  }

  /** The policy gate, then the session; undefined when refused. */
  #open(socket: Socket, user: PasswdEntry, hello: Hello, fail: (message: string) => void): ShellSession | undefined {
    const { emit, logger } = this.#options;
    const ownUid = process.getuid?.();
    if (ownUid !== 0 && ownUid !== user.uid) {
      fail(`the omwatch agent runs as uid ${ownUid}, not root: it can record shells of its own user only`);
      return undefined;
    }
    if ([...this.#sessions.values()].filter((s) => s.user === user.name).length >= MAX_SESSIONS_PER_USER) {
      fail(`${user.name} has ${MAX_SESSIONS_PER_USER} recorded sessions open already; end one first`);
      return undefined;
    }
    const judge = this.#options.judge();
    const policy = judge?.policy.shell ?? DEFAULT_SHELL_POLICY;
    const id = `shell-${uuidv7()}`;
    const problems: string[] = [];
    if (judge) {
      const verdict = judge.judge(Date.now(), { tool: SHELL_TOOL, user: user.name, ...(hello.ticket ? { ticket: hello.ticket } : {}) }, undefined, true);
      if (verdict.TicketRequired && !verdict.TicketValid) {
        problems.push(hello.ticket ? `the ticket '${hello.ticket}' does not match the policy's ticket pattern` : 'a change ticket is required: start the shell with --ticket ID');
      }
      if (policy.requireMaintenanceWindow && !verdict.InMaintenanceWindow) problems.push('no maintenance window is open for this host now');
    }
    const reason = problems.join('; ');
    const refuse = (why: string, rule: string) => {
      this.counters.refused++;
      emit({
        category: 'remote_session', timeMs: Date.now(),
        fields: { SessionId: id, Action: 'refused', Protocol: hello.sshConnection ? 'ssh' : 'local', Tool: SHELL_TOOL, User: user.name, Reason: why, ...(hello.ticket ? { Ticket: hello.ticket } : {}) },
      });
      logger.warn({ user: user.name, reason: why }, 'recorded shell refused by the policy');
      fail(`${why}. The session was refused and the refusal recorded (policy ${rule}).`);
      return undefined;
    };
    if (hello.command && !policy.allowCommand) return refuse(`this account may open the recorded shell only, not run a command of its choosing (${hello.command.join(' ').slice(0, 200)})`, 'shell.allowCommand: false');
    if (problems.length > 0 && policy.gate === 'refuse') return refuse(reason, 'shell.gate: refuse');
    const terminal = openUserTerminal(hello.terminal, user.uid);
    const session = new ShellSession({
      id, mark: randomBytes(12).toString('hex'), user, hello, policy,
      maxSessionMinutes: judge?.policy.maxSessionMinutes,
      flagged: problems.length > 0 ? reason : undefined, terminal,
      program: policy.program, rcPath: this.#rcPath,
      emit, record: this.#options.record, live: this.#options.live, recordingBehind: this.#options.recordingBehind,
      logger,
    }, socketSide(socket));
    try {
      session.start();
    } catch (error) {
      logger.error({ err: (error as Error).message, user: user.name }, 'recorded shell could not start');
      fail(`the shell could not start: ${(error as Error).message}`);
      return undefined;
    } finally {
      // The relay holds its own copy.
      if (terminal !== undefined) closeSync(terminal);
    }
    this.counters.started++;
    this.#sessions.set(id, session);
    logger.info({ sessionId: id, user: user.name, ticket: hello.ticket, flagged: problems.length > 0 }, 'recorded shell session started');
    this.#onChange?.();
    void session.ended.then(() => {
      this.#sessions.delete(id);
      this.#onChange?.();
    });
    return session;
  }
}
