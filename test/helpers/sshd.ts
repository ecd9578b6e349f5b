// Starts a real OpenSSH server on loopback for integration tests, with a test user and a key to log in as.
// A handle owns one sshd, its temp dir, its sessions and the ssh clients it spawned; stop() ends them all.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, readdirSync, readFileSync, watch } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { Socket, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

export const SSHD_PATH = '/usr/sbin/sshd';
const SSH_PATH = '/usr/bin/ssh';
const SSH_KEYGEN_PATH = '/usr/bin/ssh-keygen';
const LOOPBACK = '127.0.0.1';

export interface SshdOptions {
  /** Account the client logs in as; created (with a home) if missing, never deleted. */
  user: string;
  /** PAM sets `/proc/PID/loginuid` and `sessionid` on sessions; without it sshd checks the account itself. */
  usePam: boolean;
  /** Deadline for sshd to listen and send its banner, per port tried. */
  startTimeoutMs: number;
  /** Deadline for sessions to end after SIGTERM before stop() sends SIGKILL. */
  stopTimeoutMs: number;
  /** More sshd_config lines, appended after the helper's own. */
  extraConfig: readonly string[];
}

const defaultOptions: SshdOptions = {
  user: 'omwtest',
  usePam: false,
  startTimeoutMs: 10_000,
  stopTimeoutMs: 5_000,
  extraConfig: [],
};

const MAX_PORT_ATTEMPTS = 5;

export type SshdErrorCode =
  | 'SSHD_UNAVAILABLE'
  | 'SSHD_PORT_IN_USE'
  | 'SSHD_START_FAILED'
  | 'SSHD_START_TIMEOUT'
  | 'SSHD_LOG_TIMEOUT'
  | 'SSHD_STOPPED'
  | 'SSHD_SETUP_FAILED';

export class SshdError extends Error {
  readonly code: SshdErrorCode;
  constructor(code: SshdErrorCode, message: string) {
    super(message);
    this.name = 'SshdError';
    this.code = code;
  }
}

export interface LogMatch {
  /** The whole matching line, without its newline. */
  line: string;
  match: RegExpExecArray;
  /** Byte offset just past this line: pass it as `fromOffset` to wait for a later line. */
  endOffset: number;
}

export interface SshOptions {
  /** Force a remote pty (`-tt`), so the session gets `sshd: USER@pts/N` and a utmp record. */
  tty?: boolean;
  /** Open no session channel at all (`-N`, as for a tunnel); the command is then ignored. */
  noChannel?: boolean;
}

export interface SshdHandle {
  readonly port: number;
  readonly user: string;
  /** Temp dir holding the config, keys, pid file and log; removed by stop(). */
  readonly dir: string;
  /** sshd's `-E` log. */
  readonly logFile: string;
  /** Pid of the listening sshd. */
  readonly pid: number;
  /** Private key the test user accepts, for tests that run their own `ssh`. */
  readonly clientKey: string;
  /** Runs `command` as the test user over a real SSH connection; stop() ends the client if still running. */
  ssh(command: string, opts?: SshOptions): ChildProcess;
  /** Bytes in the log now; pass as `fromOffset` to wait only for lines written after this point. */
  logOffset(): number;
  /** Resolves with the first log line from `fromOffset` (default: the start) that matches `pattern`. */
  waitForLog(pattern: RegExp, timeoutMs: number, opts?: { fromOffset?: number }): Promise<LogMatch>;
  /** Ends sshd, its sessions and the spawned clients, and removes the temp dir. Keeps the user. */
  stop(): Promise<void>;
}

/** Whether this process can run the real-sshd tests; `reason` says what is missing. */
export function sshdAvailable(): { ok: boolean; reason?: string } {
  const uid = process.getuid?.();
  if (uid !== 0) {
    return { ok: false, reason: `needs root to run sshd and create the test user (running as uid ${uid ?? 'unknown'})` };
  }
  for (const bin of [SSHD_PATH, SSH_PATH, SSH_KEYGEN_PATH, '/usr/sbin/useradd']) {
    try {
      accessSync(bin, constants.X_OK);
    } catch {
      return { ok: false, reason: `${bin} not found: run scripts/pretest.sh (installs openssh-server openssh-client)` };
    }
  }
  return { ok: true };
}

export async function startSshd(options: Partial<SshdOptions> = {}): Promise<SshdHandle> {
  const opts: SshdOptions = { ...defaultOptions, ...options };
  const available = sshdAvailable();
  if (!available.ok) throw new SshdError('SSHD_UNAVAILABLE', `cannot start sshd: ${available.reason}`);

  const account = await ensureUser(opts.user);
  await ensureRuntimeFiles();

  const dir = await mkdtemp(join(tmpdir(), 'omw-sshd-'));
  // One authorized_keys file per instance: test files run in parallel workers, each with its own key,
  // and a shared file would be a read-modify-write race between them.
  const authorizedKeysName = `authorized_keys.${basename(dir)}`;
  const authorizedKeys = join(account.home, '.ssh', authorizedKeysName);
  try {
    const hostKey = join(dir, 'ssh_host_ed25519_key');
    const clientKey = join(dir, 'client_ed25519');
    await Promise.all([keygen(hostKey), keygen(clientKey)]);
    await installAuthorizedKey(account, authorizedKeys, readFileSync(`${clientKey}.pub`, 'utf8'));

    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const files = { dir, hostKey, clientKey, authorizedKeys, authorizedKeysName };
      try {
        return await SshdInstance.start(port, files, opts);
      } catch (err) {
        if (err instanceof SshdError && err.code === 'SSHD_PORT_IN_USE' && attempt < MAX_PORT_ATTEMPTS) continue;
        throw err;
      }
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    await rm(authorizedKeys, { force: true });
    throw err;
  }
}

interface InstanceFiles {
  dir: string;
  hostKey: string;
  clientKey: string;
  authorizedKeys: string;
  authorizedKeysName: string;
}

// Cleans up after a test process that dies without stop() (a vitest worker is killed, not exited, so no
// exit hook runs). Its stdin is a pipe from the test process: EOF means that process is gone, however it
// ended. It signals the pid only if it is still this sshd. Args: sshd pid, config path, port, dir, keys file.
const GUARD_SCRIPT = `
read -r _ || :
children() { local t; for t in /proc/"$1"/task/*/children; do cat "$t" 2>/dev/null; done; }
tree() { local c; for c in $(children "$1"); do tree "$c"; done; echo "$1"; }
pids=""
ours=""
if tr '\\0' ' ' < "/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$2"; then
  ours=1
  kill -STOP "$1" 2>/dev/null
  for c in $(children "$1"); do pids="$pids $(tree "$c")"; done
fi
for f in $(grep -lzx -- "SSH_CONNECTION=.* 127\\.0\\.0\\.1 $3" /proc/[0-9]*/environ 2>/dev/null); do
  p="$(dirname "$f")"
  pids="$pids $(basename "$p")"
done
if [ -n "$pids" ]; then kill -TERM $pids 2>/dev/null; fi
if [ -n "$ours" ]; then kill -KILL "$1" 2>/dev/null; fi
rm -rf -- "$4" "$5"
`;

class SshdInstance implements SshdHandle {
  readonly port: number;
  readonly user: string;
  readonly dir: string;
  readonly logFile: string;
  readonly pid: number;
  readonly clientKey: string;
  readonly #files: InstanceFiles;
  readonly #opts: SshdOptions;
  readonly #server: ChildProcess;
  readonly #serverExited: Promise<void>;
  readonly #clients = new Set<ChildProcess>();
  readonly #guard: ChildProcess;
  #stopping: Promise<void> | undefined;

  private constructor(port: number, files: InstanceFiles, opts: SshdOptions, server: ChildProcess, serverExited: Promise<void>, config: string) {
    this.port = port;
    this.user = opts.user;
    this.dir = files.dir;
    this.logFile = join(files.dir, `sshd-${port}.log`);
    this.clientKey = files.clientKey;
    this.#files = files;
    this.#opts = opts;
    this.#server = server;
    this.#serverExited = serverExited;
    if (server.pid === undefined) throw new SshdError('SSHD_START_FAILED', `spawning ${SSHD_PATH} gave no pid`);
    this.pid = server.pid;
    this.#guard = spawnGuard(this.pid, config, port, files);
  }

  static async start(port: number, files: InstanceFiles, opts: SshdOptions): Promise<SshdInstance> {
    const config = join(files.dir, `sshd_config-${port}`);
    const logFile = join(files.dir, `sshd-${port}.log`);
    await writeFile(config, sshdConfig(port, files, opts));
    // Created before sshd opens it (O_APPEND), so waitForLog can watch it from the first byte.
    await writeFile(logFile, '');

    const server = spawn(SSHD_PATH, ['-f', config, '-D', '-E', logFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    server.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      if (stderr.length < 8192) stderr += chunk;
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      server.once('exit', (code, signal) => resolve({ code, signal }));
      server.once('error', reject);
    });
    const instance = new SshdInstance(port, files, opts, server, exited.then(() => undefined, () => undefined), config);

    // Rejects as soon as sshd dies during start-up, so a bind failure is seen without waiting for the deadline.
    const diedEarly = exited.then(({ code, signal }) => {
      const log = readTail(logFile);
      const detail = `sshd exited (${signal ?? `code ${code}`}) while starting; log: ${log || '(empty)'}; stderr: ${stderr || '(empty)'}`;
      throw new SshdError(/Address already in use/.test(log) ? 'SSHD_PORT_IN_USE' : 'SSHD_START_FAILED', detail);
    });
    const deadline = Date.now() + opts.startTimeoutMs;
    const giveUp = new AbortController();
    try {
      // The listening line proves this sshd owns the port, so the banner read next cannot come from another server.
      const listening = new RegExp(`^Server listening on ${escapeRegExp(LOOPBACK)} port ${port}\\.`);
      await Promise.race([waitForLogLine(logFile, listening, opts.startTimeoutMs, 0, giveUp.signal), diedEarly]);
      await Promise.race([readBanner(port, deadline), diedEarly]);
    } catch (err) {
      giveUp.abort();
      server.kill('SIGKILL');
      await exited.catch(() => undefined);
      instance.#guard.kill('SIGKILL');
      if (err instanceof SshdError && err.code === 'SSHD_LOG_TIMEOUT') {
        throw new SshdError('SSHD_START_TIMEOUT', `sshd did not listen on port ${port} within ${opts.startTimeoutMs} ms; log: ${readTail(logFile) || '(empty)'}`);
      }
      throw err;
    }
    return instance;
  }

  ssh(command: string, opts: SshOptions = {}): ChildProcess {
    if (this.#stopping) throw new SshdError('SSHD_STOPPED', `ssh(${JSON.stringify(command)}) after stop() on port ${this.port}`);
    const args = [
      '-F', '/dev/null',
      '-i', this.clientKey,
      '-p', String(this.port),
      '-o', 'StrictHostKeyChecking=no',
      '-o', 'UserKnownHostsFile=/dev/null',
      '-o', 'BatchMode=yes',
      '-o', 'LogLevel=ERROR',
      '-o', 'IdentitiesOnly=yes',
      '-o', 'ConnectTimeout=10',
      // The default post-quantum kex (sntrup761x25519) costs ~130 ms per login here; what tests observe
      // (processes, utmp, sockets, log lines) does not depend on the kex.
      '-o', 'KexAlgorithms=curve25519-sha256',
    ];
    if (opts.tty) args.push('-tt');
    if (opts.noChannel) args.push('-N', `${this.user}@${LOOPBACK}`);
    else args.push(`${this.user}@${LOOPBACK}`, command);
    const client = spawn(SSH_PATH, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#clients.add(client);
    client.once('exit', () => this.#clients.delete(client));
    client.once('error', () => this.#clients.delete(client));
    return client;
  }

  logOffset(): number {
    try {
      return readFileSync(this.logFile).length;
    } catch {
      return 0;
    }
  }

  waitForLog(pattern: RegExp, timeoutMs: number, opts: { fromOffset?: number } = {}): Promise<LogMatch> {
    return waitForLogLine(this.logFile, pattern, timeoutMs, opts.fromOffset ?? 0);
  }

  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    // Every step runs even if an earlier one throws; the first error is rethrown at the end.
    const errors: unknown[] = [];
    const step = async (fn: () => Promise<void> | void): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        errors.push(err);
      }
    };

    // The listener does not end sessions (they outlive it, re-parented to pid 1), so they are found and
    // signalled here. It is frozen first so that no connection forks a session after the scan.
    const listenerRunning = this.#server.exitCode === null && this.#server.signalCode === null;
    if (listenerRunning) await step(() => signalAll([this.pid], 'SIGSTOP'));
    // The [priv] monitor on SIGTERM ends its session and writes the utmp/wtmp logout record.
    await step(async () => {
      const sessions = this.#sessionPids();
      signalAll(sessions, 'SIGTERM');
      if (!(await processesGone(sessions, this.#opts.stopTimeoutMs))) {
        signalAll(sessions, 'SIGKILL');
        await processesGone(sessions, this.#opts.stopTimeoutMs);
      }
    });
    await step(async () => {
      if (!listenerRunning) return;
      // SIGKILL because a stopped process would hold SIGTERM until SIGCONT; the listener has nothing to flush.
      this.#server.kill('SIGKILL');
      await withTimeout(this.#serverExited, this.#opts.stopTimeoutMs);
    });
    await step(async () => {
      // Clients exit once their connection closes; one stuck on connect is ended here.
      const clients = [...this.#clients];
      const exits = clients.map((c) => (c.exitCode !== null || c.signalCode !== null ? Promise.resolve() : new Promise<void>((r) => c.once('exit', () => r()))));
      for (const c of clients) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
      if (!(await withTimeout(Promise.all(exits), this.#opts.stopTimeoutMs))) for (const c of clients) c.kill('SIGKILL');
    });
    await step(() => rm(this.#files.authorizedKeys, { force: true }));
    await step(() => rm(this.dir, { recursive: true, force: true }));
    // Last, so that if this process dies during stop() the guard still finishes the job.
    this.#guard.kill('SIGKILL');
    if (errors.length > 0) throw errors[0];
  }

  /** Every process this sshd started: its descendants, plus session processes that re-parented away. */
  #sessionPids(): number[] {
    const pids = new Set(descendants(this.pid));
    // A `setsid nohup … &` started in a session leaves the tree but keeps SSH_CONNECTION naming this server's port.
    for (const pid of processesWithSshConnectionTo(this.port)) pids.add(pid);
    pids.delete(this.pid);
    return [...pids];
  }
}

function spawnGuard(sshdPid: number, config: string, port: number, files: InstanceFiles): ChildProcess {
  const guard = spawn('/bin/bash', ['-c', GUARD_SCRIPT, 'omw-sshd-guard', String(sshdPid), config, String(port), files.dir, files.authorizedKeys], {
    // Its own session, so a Ctrl-C to the test run's process group does not end it before it cleans up.
    detached: true,
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  // Neither the guard nor its pipe may keep the test process alive.
  guard.unref();
  if (guard.stdin instanceof Socket) guard.stdin.unref();
  guard.once('error', () => undefined);
  return guard;
}

function sshdConfig(port: number, files: InstanceFiles, opts: SshdOptions): string {
  return [
    `Port ${port}`,
    `ListenAddress ${LOOPBACK}`,
    `HostKey ${files.hostKey}`,
    `PidFile ${join(files.dir, `sshd-${port}.pid`)}`,
    `AuthorizedKeysFile .ssh/${files.authorizedKeysName}`,
    `UsePAM ${opts.usePam ? 'yes' : 'no'}`,
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PermitRootLogin no',
    // Keeps a pty session's output to what the command prints.
    'PrintMotd no',
    'PrintLastLog no',
    'LogLevel VERBOSE',
    'Subsystem sftp /usr/lib/openssh/sftp-server',
    ...opts.extraConfig,
    '',
  ].join('\n');
}

export interface Account {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

export async function ensureUser(name: string): Promise<Account> {
  // Parallel workers may race to create the user: "already exists" (9) is success, a held lock (10) is retried.
  for (let attempt = 1; ; attempt++) {
    if ((await getent('passwd', name)) !== undefined) break;
    const result = await run('useradd', ['-m', '-s', '/bin/bash', name]);
    if (result.code === 0 || result.code === 9) break;
    if (result.code !== 10 || attempt >= 10) {
      throw new SshdError('SSHD_SETUP_FAILED', `useradd ${name} failed (exit ${result.code}): ${result.stderr.trim()}`);
    }
    await delay(50 * attempt);
  }
  const passwd = await getent('passwd', name);
  const fields = passwd?.split(':') ?? [];
  const uid = Number(fields[2]);
  const gid = Number(fields[3]);
  const home = fields[5];
  if (!Number.isInteger(uid) || !Number.isInteger(gid) || !home) {
    throw new SshdError('SSHD_SETUP_FAILED', `expected a passwd entry name:x:uid:gid:gecos:home:shell for ${name}, got ${JSON.stringify(passwd)}`);
  }
  // useradd leaves the password locked ('!'); with UsePAM no sshd then refuses even a key
  // ("User … not allowed because account is locked"). '*' = no password, but not locked.
  const hash = (await getent('shadow', name))?.split(':')[1] ?? '';
  if (hash.startsWith('!')) {
    const result = await run('usermod', ['-p', '*', name]);
    if (result.code !== 0) throw new SshdError('SSHD_SETUP_FAILED', `usermod -p '*' ${name} failed (exit ${result.code}): ${result.stderr.trim()}`);
  }
  return { name, uid, gid, home };
}

async function installAuthorizedKey(account: Account, path: string, publicKey: string): Promise<void> {
  const sshDir = join(account.home, '.ssh');
  await mkdir(sshDir, { recursive: true, mode: 0o700 });
  await chown(sshDir, account.uid, account.gid);
  await chmod(sshDir, 0o700);
  await writeFile(path, publicKey, { mode: 0o600 });
  await chown(path, account.uid, account.gid);
}

async function ensureRuntimeFiles(): Promise<void> {
  // Without it: "Missing privilege separation directory: /run/sshd".
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  // sshd records pty sessions in utmp only if the file already exists. O_EXCL so a racing worker's file is kept.
  const utmpGid = Number((await getent('group', 'utmp'))?.split(':')[2] ?? 0);
  try {
    const fh = await open('/run/utmp', 'wx', 0o664);
    try {
      await fh.chown(0, utmpGid);
      await fh.chmod(0o664);
    } finally {
      await fh.close();
    }
  } catch (err) {
    if (!isErrno(err, 'EEXIST')) throw err;
  }
}

async function keygen(path: string): Promise<void> {
  const result = await run(SSH_KEYGEN_PATH, ['-q', '-t', 'ed25519', '-N', '', '-C', 'omwatch-test', '-f', path]);
  if (result.code !== 0) throw new SshdError('SSHD_SETUP_FAILED', `ssh-keygen -f ${path} failed (exit ${result.code}): ${result.stderr.trim()}`);
}

/** A port the kernel just handed out; sshd may still lose it to a race, which the caller retries. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, LOOPBACK, () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port);
        else reject(new SshdError('SSHD_SETUP_FAILED', `expected a TCP address from listen(0), got ${JSON.stringify(address)}`));
      });
    });
  });
}

/** Connects until the server sends `SSH-2.0-`; refused connections are retried with backoff until `deadline`. */
async function readBanner(port: number, deadline: number): Promise<void> {
  for (let backoffMs = 5; ; backoffMs = Math.min(backoffMs * 2, 100)) {
    const outcome = await new Promise<'ok' | 'refused'>((resolve, reject) => {
      const socket = connect({ host: LOOPBACK, port });
      let received = '';
      socket.setTimeout(Math.max(deadline - Date.now(), 1), () => {
        socket.destroy();
        reject(new SshdError('SSHD_START_TIMEOUT', `no SSH banner from port ${port} before the deadline (got ${JSON.stringify(received)})`));
      });
      socket.setEncoding('latin1');
      socket.on('data', (chunk: string) => {
        received += chunk;
        if (received.includes('SSH-2.0-')) {
          socket.destroy();
          resolve('ok');
        }
      });
      socket.once('error', (err) => {
        socket.destroy();
        if (isErrno(err, 'ECONNREFUSED')) resolve('refused');
        else reject(err);
      });
      socket.once('end', () => reject(new SshdError('SSHD_START_FAILED', `port ${port} closed before an SSH banner (got ${JSON.stringify(received)})`)));
    });
    if (outcome === 'ok') return;
    if (Date.now() + backoffMs > deadline) throw new SshdError('SSHD_START_TIMEOUT', `port ${port} still refused connections at the deadline`);
    await delay(backoffMs);
  }
}

/** Resolves on the first complete line from byte `fromOffset` that matches; watches the file for appends. */
function waitForLogLine(file: string, pattern: RegExp, timeoutMs: number, fromOffset: number, signal?: AbortSignal): Promise<LogMatch> {
  // A global or sticky regex would carry lastIndex from one line to the next.
  const re = new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, ''));
  return new Promise<LogMatch>((resolve, reject) => {
    let offset = fromOffset;
    let pending = Buffer.alloc(0);
    let settled = false;
    const watcher = watch(file);
    const timer = setTimeout(() => {
      finish(new SshdError('SSHD_LOG_TIMEOUT', `expected a line matching ${pattern} in ${file} within ${timeoutMs} ms; log ends with: ${readTail(file) || '(empty)'}`));
    }, timeoutMs);

    function finish(result: LogMatch | Error): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      watcher.close();
      if (result instanceof Error) reject(result);
      else resolve(result);
    }

    // Reads whatever was appended since the last scan; synchronous, so scans never interleave.
    function scan(): void {
      if (settled) return;
      let chunk: Buffer;
      try {
        const all = readFileSync(file);
        chunk = all.subarray(offset);
        offset = all.length;
      } catch (err) {
        finish(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      let buf = Buffer.concat([pending, chunk]);
      let lineStart = offset - buf.length;
      for (let nl = buf.indexOf(0x0a); nl !== -1; nl = buf.indexOf(0x0a)) {
        // sshd's -E log ends lines with "\r\n" (it writes as if to a terminal).
        const end = nl > 0 && buf[nl - 1] === 0x0d ? nl - 1 : nl;
        const line = buf.subarray(0, end).toString('utf8');
        lineStart += nl + 1;
        buf = buf.subarray(nl + 1);
        const match = re.exec(line);
        if (match) {
          finish({ line, match, endOffset: lineStart });
          return;
        }
      }
      pending = Buffer.from(buf);
    }

    watcher.on('change', scan);
    watcher.on('error', (err) => finish(err));
    signal?.addEventListener('abort', () => finish(new SshdError('SSHD_LOG_TIMEOUT', `stopped waiting for ${pattern} in ${file}`)), { once: true });
    // After the watcher exists, so a line written between the two is not missed.
    scan();
  });
}

/** Pids whose parent chain leads to `root`, from one pass over /proc. */
function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const pid of procPids()) {
    const ppid = readPpid(pid);
    if (ppid === undefined) continue;
    const list = children.get(ppid);
    if (list) list.push(pid);
    else children.set(ppid, [pid]);
  }
  const out: number[] = [];
  const queue = [root];
  for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
    for (const child of children.get(pid) ?? []) {
      out.push(child);
      queue.push(child);
    }
  }
  return out;
}

function processesWithSshConnectionTo(port: number): number[] {
  // SSH_CONNECTION=client_ip client_port server_ip server_port
  const marker = new RegExp(`(?:^|\\0)SSH_CONNECTION=\\S+ \\d+ ${escapeRegExp(LOOPBACK)} ${port}(?:\\0|$)`);
  const out: number[] = [];
  for (const pid of procPids()) {
    try {
      if (marker.test(readFileSync(`/proc/${pid}/environ`, 'latin1'))) out.push(pid);
    } catch {
      // Gone since the listing, or a kernel thread: either way not a session process.
    }
  }
  return out;
}

function procPids(): number[] {
  return readdirSync('/proc').filter((name) => /^\d+$/.test(name)).map(Number);
}

/** The ppid and state from /proc/PID/stat; comm may hold spaces and parens, so parse after the last ')'. */
function readStat(pid: number): { state: string; ppid: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (state === undefined || ppid === undefined) return undefined;
    return { state, ppid: Number(ppid) };
  } catch {
    return undefined;
  }
}

function readPpid(pid: number): number | undefined {
  return readStat(pid)?.ppid;
}

/** Gone, or a zombie: pid 1 here reaps orphans late, so an ended session can linger as `Z` for a while. */
function isGone(pid: number): boolean {
  const stat = readStat(pid);
  return stat === undefined || stat.state === 'Z' || stat.state === 'X';
}

function signalAll(pids: readonly number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch (err) {
      if (!isErrno(err, 'ESRCH')) throw err;
    }
  }
}

/** True once every pid is gone; false at the deadline. These are not our children, so there is no exit event to wait on. */
async function processesGone(pids: readonly number[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let backoffMs = 5; ; backoffMs = Math.min(backoffMs * 2, 100)) {
    if (pids.every(isGone)) return true;
    if (Date.now() >= deadline) return false;
    await delay(backoffMs);
  }
}

/** True if `promise` settled within `timeoutMs`. */
async function withTimeout(promise: Promise<unknown>, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    return await Promise.race([promise.then(() => true, () => true), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

function readTail(file: string, maxBytes = 4096): string {
  try {
    const all = readFileSync(file);
    return all.subarray(Math.max(0, all.length - maxBytes)).toString('utf8').trim();
  } catch {
    return '';
  }
}

async function getent(database: 'passwd' | 'shadow' | 'group', key: string): Promise<string | undefined> {
  const result = await run('getent', [database, key]);
  // Exit 2 = key not found.
  return result.code === 0 ? result.stdout.trim() : undefined;
}

function run(file: string, args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') {
        reject(err);
        return;
      }
      resolve({ code: err ? Number(err.code) : 0, stdout, stderr });
    });
  });
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function isErrno(err: unknown, code: string): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === code;
}
