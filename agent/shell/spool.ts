// Best effort, when policy allows it (`shell.whenDaemonDown: spool`): with the agent daemon down, the
// shell records the session itself, as the user, into a file in the spool folder, and the daemon takes
// the file in when it is back. The user owns that file until then and could alter it: the session's
// start event says it was spooled, so nobody takes it for a daemon-held recording. Who the user was
// still comes from the kernel: the daemon reads it from the file's owner, not from the file's content.
import { closeSync, fstatSync, mkdirSync, chmodSync, mkdtempSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, writeSync, constants as fsConstants } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { v7 as uuidv7 } from 'uuid';
import { categoryFields, type Category } from '../../collector/protocol/index.ts';
import type { Logger } from '../log/index.ts';
import { silentLogger } from '../log/index.ts';
import type { Observation } from '../sensors/types.ts';
import { rawTerminal } from './client.ts';
import { lookupUser } from './identity.ts';
import { BASH_RC } from './marks.ts';
import type { Hello, ShellPolicy } from './policy.ts';
import { openUserTerminal } from './relay.ts';
import { ShellSession } from './session.ts';
import { randomBytes } from 'node:crypto';
import { SpoolError } from '../errors.ts';

/** A spooled file past this size is not taken in whole; it is set aside for a person to look at. */
const MAX_SPOOL_FILE_BYTES = 64 * 1024 * 1024;
const SPOOLED_CATEGORIES: ReadonlySet<Category> = new Set(['remote_session', 'shell_command', 'session_recording']);

export { SpoolError };

/** The spool folder: root's, mode 1733 (anyone may add a file; only its owner and root may touch it). */
export function prepareSpoolDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o1733 });
  chmodSync(dir, 0o1733);
}

/** Runs the session in a pty this process owns, recorded into the spool; resolves to its exit code. */
export async function runSpooledSession(spoolDir: string, hello: Hello, policy: ShellPolicy, maxSessionMinutes: number | undefined): Promise<number> {
  const dir = statOrUndefined(spoolDir);
  if (!dir?.isDirectory() || (dir.mode & 0o1000) === 0 || dir.uid !== 0) {
    throw new SpoolError(`the spool folder ${spoolDir} is missing or not root's with the sticky bit; the agent makes it when it first starts`);
  }
  const id = `shell-${uuidv7()}`;
  const part = join(spoolDir, `${id}.jsonl.part`);
  const fd = openSync(part, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, 0o600);
  const write = (observation: Observation) => writeSync(fd, `${JSON.stringify(observation)}\n`);
  const rcDir = mkdtempSync(join(tmpdir(), 'omwatch-shell-'));
  const rcPath = join(rcDir, 'bashrc');
  writeFileSync(rcPath, BASH_RC, { mode: 0o600 });
  const restore = rawTerminal();
  const { stdin, stdout } = process;
  const terminal = openUserTerminal(hello.terminal, process.getuid!());
  try {
    return await new Promise<number>((resolve) => {
      const session = new ShellSession({
        id, mark: randomBytes(12).toString('hex'), user: lookupUser(process.getuid!()), hello, policy, maxSessionMinutes,
        flagged: undefined, terminal, program: policy.program, rcPath, emit: write, record: write, live: () => {}, recordingBehind: () => false,
        logger: silentLogger(),
      }, {
        started: () => {},
        show: (bytes) => stdout.write(bytes),
        onDrain: (listener) => void stdout.on('drain', listener),
        resumeInput: () => void stdin.resume(),
        exit: (code) => resolve(code),
      });
      // With the terminal opened, the relay reads the keys itself.
      if (terminal === undefined) {
        stdin.on('data', (data: Buffer) => {
          if (!session.input(data)) stdin.pause();
        });
        stdin.resume();
      }
      stdout.on('resize', () => session.resize(stdout.columns || 80, stdout.rows || 24));
      session.start();
    });
  } finally {
    if (terminal !== undefined) closeSync(terminal);
    restore();
    stdin.pause();
    closeSync(fd);
    renameSync(part, join(spoolDir, `${id}.jsonl`));
    rmSync(rcDir, { recursive: true, force: true });
  }
}

export interface SpoolIntake {
  emit: (observation: Observation) => void;
  record: (observation: Observation<'session_recording'>) => void;
  /** A file that could not be taken in whole: set aside (`.rejected`) and reported. */
  rejected: (file: string, reason: string) => void;
  logger?: Logger;
}

/**
 * Takes in the oldest finished spooled session (one per call, so a scan never holds the daemon long):
 * each line checked against its category's schema, the file's session id, and the order a session is
 * written in (its start first, chunks numbered from 0, its end last); `User` set from the file's owner;
 * a new session id, so a spooled file can never add to or alter a session already held; the start marked
 * as spooled. A file with any bad line is set aside whole, never half taken in. Never throws for a file.
 */
export function takeSpool(spoolDir: string, intake: SpoolIntake): number {
  const names = readdirSync(spoolDir).filter((name) => /^shell-[0-9a-f-]{36}\.jsonl$/.test(name)).sort();
  const name = names[0];
  if (!name) return 0;
  const path = join(spoolDir, name);
  const spooledId = name.slice(0, -'.jsonl'.length);
  let observations: Observation[];
  try {
    observations = readSpooled(path, spooledId, `shell-${uuidv7()}`);
  } catch (error) {
    intake.rejected(path, (error as Error).message);
    try {
      renameSync(path, `${path}.rejected`);
    } catch {
      // Cannot be set aside (something is in the way): removed, so it is not read again and again.
      rmSync(path, { force: true, recursive: true });
    }
    return 0;
  }
  for (const observation of observations) {
    if (observation.category === 'session_recording') intake.record(observation as Observation<'session_recording'>);
    else intake.emit(observation);
  }
  rmSync(path, { force: true });
  intake.logger?.info({ spooledId, sessionId: (observations[0]!.fields as { SessionId: string }).SessionId, records: observations.length }, 'spooled session taken in');
  return 1;
}

function readSpooled(path: string, spooledId: string, sessionId: string): Observation[] {
  const fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
  let text: string;
  let owner: string;
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile() || stat.nlink !== 1) throw new SpoolError('not a plain file with one link');
    if (stat.size > MAX_SPOOL_FILE_BYTES) throw new SpoolError(`larger than ${MAX_SPOOL_FILE_BYTES} bytes`);
    owner = lookupUser(stat.uid).name;
    text = readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
  const observations: Observation[] = [];
  let chunks = 0;
  let ended = false;
  for (const [index, line] of text.split('\n').entries()) {
    if (line === '') continue;
    const where = `line ${index + 1}`;
    let value: { category?: unknown; timeMs?: unknown; fields?: unknown };
    try {
      value = JSON.parse(line) as typeof value;
    } catch {
      throw new SpoolError(`${where}: not JSON`);
    }
    const category = value.category as Category;
    if (!SPOOLED_CATEGORIES.has(category) || typeof value.timeMs !== 'number' || !Number.isFinite(value.timeMs)) throw new SpoolError(`${where}: not a spooled session record`);
    const fields = categoryFields[category].safeParse(value.fields);
    if (!fields.success) throw new SpoolError(`${where}: ${fields.error.issues[0]?.path.join('.')}: ${fields.error.issues[0]?.message}`);
    const checked = fields.data as Record<string, unknown>;
    if (checked['SessionId'] !== spooledId) throw new SpoolError(`${where}: another session's record`);
    const action = category === 'remote_session' ? checked['Action'] : undefined;
    if ((observations.length === 0) !== (action === 'start')) throw new SpoolError(`${where}: a session starts with its start, once`);
    if (ended) throw new SpoolError(`${where}: a record after the session's end`);
    if (action === 'end') {
      ended = true;
      if (checked['Chunks'] !== chunks) throw new SpoolError(`${where}: the end counts ${String(checked['Chunks'])} chunks, the file holds ${chunks}`);
    }
    if (action === 'refused') throw new SpoolError(`${where}: not a spooled session record`);
    if (category === 'session_recording' && checked['Chunk'] !== chunks++) throw new SpoolError(`${where}: chunk ${String(checked['Chunk'])} out of order`);
    checked['SessionId'] = sessionId;
    if (category !== 'session_recording') checked['User'] = owner;
    if (action === 'start') {
      checked['Reason'] = `spooled: recorded by the user's own shell while the agent was down (as ${spooledId}), taken in at ${new Date().toISOString()}; the user could alter it until then${checked['Reason'] ? ` (${String(checked['Reason'])})` : ''}`;
    }
    observations.push({ category, timeMs: value.timeMs, fields: checked } as Observation);
  }
  if (observations.length === 0) throw new SpoolError('empty');
  return observations;
}

function statOrUndefined(path: string) {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}
