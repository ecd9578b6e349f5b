// The recorded shell, end to end and for real: a collector, an enrolled agent daemon, and
// `omwatch-agent shell` run as an unprivileged vendor account inside a real pty, typed at as a user
// would. What is checked is what the SOC and auditors rely on: each command an event within a second,
// passwords never recorded, the recording plays back in Debian's asciinema exactly as the terminal
// showed it, an analyst's kill ends the session within a second, and the user cannot forge or undo any
// of it.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { AGENT_BIN, cli, COLLECTOR_BIN, createToken, freePort, start, startCollector, until, type Proc } from './helpers/delivery.ts';
import { ensureUser, sshdAvailable, startSshd, type Account } from './helpers/sshd.ts';
import { Terminal } from './helpers/terminal.ts';

const SHELL_BIN = new URL('../bin/omwatch-shell.js', import.meta.url).pathname;
const IMPOSTOR = new URL('./fixtures/shell-impostor.ts', import.meta.url).pathname;
const TSX = new URL('../node_modules/.bin/tsx', import.meta.url).pathname;
const asRoot = process.getuid?.() === 0;

interface Stored {
  record: { category?: string; time: string; fields?: Record<string, unknown>; rule?: { title: string }; sessionId?: string; summary?: string };
}

describe.skipIf(!asRoot)('recorded shell (omwatch-agent shell)', () => {
  let dir: string;
  let collectorDir: string;
  let agentDir: string;
  let policyPath: string;
  let collector: Proc & { url: string };
  let agent: Proc;
  let vendor: Account;
  let analyst: string;

  const writePolicy = async (text: string) => {
    const before = agent.lines.length;
    writeFileSync(policyPath, text);
    await until('the agent to load the new policy', () => agent.lines.slice(before).some((line) => line.includes('policy loaded')));
  };
  const BASE_POLICY = 'shell:\n  recordInput: true\n';

  /** `omwatch-agent shell` as the vendor, in a fresh terminal; the env claims to be root, which must not matter. */
  /**
   * The vendor's shell client in a terminal of their own, as sshd gives one (the daemon then writes to it
   * itself), or in root's (`ownTerminal: false`: the bytes then travel through the client).
   */
  const shell = (args: string[] = [], dataDir = agentDir, ownTerminal = true) => new Terminal([process.execPath, AGENT_BIN, 'shell', '--data', dataDir, ...args], {
    as: vendor, cwd: vendor.home, env: { HOME: vendor.home, USER: 'root', LOGNAME: 'root' }, ownTerminal,
  });
  /** Whether the agent daemon holds the terminal open (it writes to it itself). */
  const daemonHolds = (t: Terminal) => readdirSync(`/proc/${agent.child.pid}/fd`).some((fd) => {
    try {
      return readlinkSync(`/proc/${agent.child.pid}/fd/${fd}`) === t.path;
    } catch {
      return false;
    }
  });
  /** Types a line and returns when Enter was pressed (ms). */
  const enter = (t: Terminal, line: string) => {
    t.write(`${line}\r`);
    return Date.now();
  };
  const sessionIdOf = async (t: Terminal) => {
    const from = t.output.length;
    enter(t, 'echo "sid=$OMWATCH_SESSION"');
    await t.waitFor(/sid=shell-[\w-]+\r\n/, from);
    return /sid=(shell-[\w-]+)\r\n/.exec(t.text(from))![1]!;
  };
  const sessionRecords = (sessionId: string): Stored[] => {
    const result = cli(COLLECTOR_BIN, ['export', '--data', collectorDir, '--session', sessionId]);
    expect(result.status, result.stderr).toBe(0);
    return result.stdout.trim().split('\n').filter(Boolean).map((line) => JSON.parse(line) as Stored);
  };
  const sessionState = (sessionId: string) => {
    const result = cli(COLLECTOR_BIN, ['sessions', '--data', collectorDir, '--json']);
    return result.stdout.trim().split('\n').filter(Boolean).map((line) => JSON.parse(line) as { id: string; state: string; endedBy: string | null }).find((s) => s.id === sessionId);
  };
  const ended = (sessionId: string) => until(`session ${sessionId} to be stored as ended`, () => {
    const state = sessionState(sessionId);
    return state?.state === 'ended' ? state : undefined;
  });
  /** The test's `sleep N` processes still running (N of this run, so nothing else's sleeps count). */
  const NAP = 4_000 + Math.floor(Math.random() * 50_000);
  const SLEEPERS = new Set([NAP, NAP + 1, NAP + 2].map((n) => `sleep\u0000${n}\u0000`));
  const sleepers = () => readdirSync('/proc').filter((pid) => /^\d+$/.test(pid)).filter((pid) => {
    try {
      return SLEEPERS.has(readFileSync(`/proc/${pid}/cmdline`, 'latin1'));
    } catch {
      return false;
    }
  });
  const api = (path: string, init: RequestInit = {}, token = analyst) => fetch(new URL(path, collector.url), { ...init, headers: { authorization: `Bearer ${token}` } });

  beforeAll(async () => {
    vendor = await ensureUser('omwvendor');
    dir = mkdtempSync(join(tmpdir(), 'omwatch-shell-'));
    // The vendor may pass through to the socket, and no further: the outbox stays root's alone.
    chmodSync(dir, 0o711);
    collectorDir = join(dir, 'collector');
    agentDir = join(dir, 'agent');
    mkdirSync(agentDir, { mode: 0o711 });
    mkdirSync(join(dir, 'policy'));
    policyPath = join(dir, 'policy', 'policy.yml');
    writeFileSync(policyPath, BASE_POLICY);
    collector = await startCollector(collectorDir, await freePort());
    const enrolled = cli(AGENT_BIN, ['enroll', '--collector', collector.url, '--token', createToken(collectorDir, 'enroll'), '--data', agentDir]);
    if (enrolled.status !== 0) throw new Error(`enroll failed: ${enrolled.stderr}`);
    agent = start([process.execPath, AGENT_BIN, 'run', '--data', agentDir, '--policy', policyPath], {}, { searchStderr: true });
    await agent.waitLine(/recorded shell: listening/);
    const made = cli(COLLECTOR_BIN, ['token', 'create', '--role', 'analyst', '--name', 'soc-alice', '--data', collectorDir]);
    analyst = made.stdout.trim().split('\n').at(-1)!;
  }, 120_000);

  afterAll(async () => {
    agent?.child.kill('SIGTERM');
    await agent?.exited;
    collector?.child.kill('SIGTERM');
    await collector?.exited;
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it.each([
    ['the daemon writing to the user\'s own terminal', true],
    ['through the client, in a terminal not the user\'s', false],
  ])('records a working session (%s): commands (a builtin too) as events within 1 s, no password, resize, exit code; the recording plays back as shown', async (_, ownTerminal) => {
    const t = shell(['--ticket', 'CHG-1042', '--reason', 'replace PLC firmware'], agentDir, ownTerminal);
    await t.waitFor(/\$ $/);
    const sessionId = await sessionIdOf(t);
    expect(daemonHolds(t)).toBe(ownTerminal);
    const entered: Array<[string, number]> = [['echo "sid=$OMWATCH_SESSION"', Date.now()]];
    const run = async (line: string, shows: RegExp | string) => {
      const from = t.output.length;
      entered.push([line, enter(t, line)]);
      await t.waitFor(shows, from);
    };
    // The user's own terminal and groups, nothing of root's (login does the same).
    await run('echo "who=$(id -un) groups=$(id -Gn) tty-owner=$(stat -c %U $(tty))"', 'who=omwvendor groups=omwvendor tty-owner=omwvendor\r\n');
    await run('cd /tmp', /\$ $/);
    await run('pwd', '/tmp\r\n');
    await run('echo hello-$((6*7))', 'hello-42');
    // Typed key by key, as a person types: each key shows on the screen, so each is recorded as input.
    let from = t.output.length;
    for (const key of 'echo typed-by-hand') {
      t.write(key);
      from = await t.waitFor(key, from);
    }
    entered.push(['echo typed-by-hand', enter(t, '')]);
    await t.waitFor('typed-by-hand\r\n', from);
    // A password read with echo off: typed key by key too, never on the screen, never in the recording.
    from = t.output.length;
    entered.push([`read -s -p 'Password: ' pw; echo "got \${#pw} chars"`, enter(t, `read -s -p 'Password: ' pw; echo "got \${#pw} chars"`)]);
    // The prompt itself, at the end of the screen (the command line's echo holds the same words).
    await t.waitFor(/Password: $/, from);
    for (const key of 's3cret-Xy9') t.write(key);
    t.write('\r');
    await t.waitFor('got 10 chars', from);
    // Ctrl-C reaches the foreground job through the pty's own line discipline.
    from = t.output.length;
    // Typed only once the job says it runs: bash puts it in the foreground before it execs, and a Ctrl-C
    // that comes sooner reaches bash, which keeps waiting for the job.
    const job = `sh -c 'echo "job: $$"; exec sleep 30'`;
    entered.push([job, enter(t, job)]);
    await t.waitFor(/job: \d+\r\n/, from);
    t.write('\x03');
    await t.waitFor(/\^C.*\$ $/s, from, 5_000);
    // A resize reaches the shell asynchronously, as over ssh: readline redraws its prompt once it has.
    from = t.output.length;
    t.pty.resize(100, 40);
    await t.waitFor('\r\x1b[K', from);
    await run('stty size', '40 100');
    entered.push(['exit 3', enter(t, 'exit 3')]);
    expect((await t.exited).exitCode).toBe(3);

    await ended(sessionId);
    const records = sessionRecords(sessionId);
    const commands = records.filter((r) => r.record.category === 'shell_command');
    expect(commands.map((r) => r.record.fields!['CommandLine'])).toEqual(entered.map(([line]) => line));
    for (const [index, command] of commands.entries()) {
      expect(command.record.fields).toMatchObject({ SessionId: sessionId, User: 'omwvendor', Ticket: 'CHG-1042' });
      const lag = Date.parse(command.record.time) - entered[index]![1];
      expect(lag, `${entered[index]![0]}: event ${lag} ms after Enter`).toBeLessThan(1_000);
    }
    expect(commands[2]!.record.fields!['CurrentDirectory']).toBe(vendor.home);
    expect(commands[3]!.record.fields!['CurrentDirectory']).toBe('/tmp');
    const opened = records.find((r) => r.record.category === 'remote_session' && r.record.fields!['Action'] === 'start')!;
    expect(opened.record.fields).toMatchObject({ Tool: 'omwatch-shell', User: 'omwvendor', Ticket: 'CHG-1042', Reason: 'replace PLC firmware', Width: 80, Height: 24 });
    const end = records.find((r) => r.record.category === 'remote_session' && r.record.fields!['Action'] === 'end')!;
    expect(end.record.fields).toMatchObject({ EndedBy: 'exit', ExitCode: 3 });

    const castPath = join(dir, `${sessionId}.cast`);
    const exported = cli(COLLECTOR_BIN, ['export', '--data', collectorDir, '--session', sessionId, '--format', 'asciicast', '--out', castPath]);
    expect(exported.status, exported.stderr).toBe(0);
    const cast = readFileSync(castPath, 'utf8');
    const [header, ...events] = cast.trimEnd().split('\n').map((line) => JSON.parse(line) as unknown);
    expect(header).toMatchObject({ version: 2, width: 80, height: 24, session_id: sessionId, user: 'omwvendor', ticket: 'CHG-1042' });
    const typed = (events as Array<[number, string, string]>).filter(([, type]) => type === 'i').map(([, , data]) => data).join('');
    expect(typed).toContain('echo typed-by-hand');
    expect(cast).not.toContain('s3cret');
    expect(events).toContainEqual([expect.any(Number), 'r', '100x40']);
    // Debian's asciinema (installed by the pretest) plays it back as the terminal showed it. It wants a
    // terminal; -opost so that terminal passes its bytes as they are.
    expect(existsSync('/usr/bin/asciinema'), 'asciinema is installed by scripts/pretest.sh').toBe(true);
    const player = new Terminal(['/bin/sh', '-c', `stty -opost && exec asciinema cat ${castPath}`], { env: { ASCIINEMA_CONFIG_HOME: join(dir, 'asciinema') } });
    expect((await player.exited).exitCode).toBe(0);
    expect(player.text()).toBe(t.text());
    const verified = cli(COLLECTOR_BIN, ['verify', '--data', collectorDir]);
    expect(verified.status, verified.stdout).toBe(0);
  }, 60_000);

  it('records a session that floods output whole, and it plays back byte for byte', async () => {
    const t = shell();
    await t.waitFor(/\$ $/);
    const sessionId = await sessionIdOf(t);
    const from = t.output.length;
    enter(t, 'head -c 3000000 /dev/urandom | base64 -w 120; echo flood-$((1+1))-done');
    await t.waitFor('flood-2-done\r\n', from, 60_000);
    enter(t, 'exit');
    await t.exited;
    expect(t.output.length - from).toBeGreaterThan(4_000_000);
    await ended(sessionId);
    const castPath = join(dir, `${sessionId}.cast`);
    const exported = cli(COLLECTOR_BIN, ['export', '--data', collectorDir, '--session', sessionId, '--format', 'asciicast', '--out', castPath]);
    expect(exported.status, exported.stderr).toBe(0);
    const player = new Terminal(['/bin/sh', '-c', `stty -opost && exec asciinema cat ${castPath}`], { env: { ASCIINEMA_CONFIG_HOME: join(dir, 'asciinema') } });
    expect((await player.exited).exitCode).toBe(0);
    expect(player.output.equals(t.output)).toBe(true);
  }, 120_000);

  it('notices a client that goes away while its keys are held back (the shell reads none), and ends the session', async () => {
    // Not a terminal: the keys travel through the client, and the command never reads them (raw, so the
    // pty takes 4 KiB and then no more; a canonical line discipline would drop the excess instead).
    const client = spawn('/usr/bin/setpriv', ['--reuid', String(vendor.uid), '--regid', String(vendor.gid), '--init-groups', '--', process.execPath, AGENT_BIN, 'shell', '--data', agentDir, '--', 'sh', '-c', `stty raw -echo; echo ready; exec sleep ${NAP}`], {
      cwd: vendor.home, env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: vendor.home }, stdio: ['pipe', 'pipe', 'ignore'],
    });
    client.stdin.on('error', () => {});
    await new Promise<void>((resolve) => client.stdout.on('data', (data: Buffer) => data.toString().includes('ready') && resolve()));
    // 8 MiB: past the relay's 1 MiB and the 4 MiB the daemon keeps before it stops reading the client.
    client.stdin.write(Buffer.alloc(8 * 1024 * 1024, 'k'));
    const held = await agent.waitLine(/"sessionId":"(shell-[\w-]+)".*keys faster than the shell takes them/);
    client.kill('SIGKILL');
    const state = await ended(held[1]!);
    expect(state.endedBy).toBe('hangup');
    await until('nothing of the session left running', () => sleepers().length === 0, 3_000);
  }, 60_000);

  it('keeps the last output of a command that exits at once: nothing is cut at the end, on screen or in the recording', async () => {
    const file = join(dir, 'five-mb.txt');
    const line = `${'0123456789abcdef'.repeat(8)}\n`;
    writeFileSync(file, `${line.repeat(Math.ceil(5_000_000 / line.length))}the-last-line\n`, { mode: 0o644 });
    const expected = readFileSync(file).length + readFileSync(file, 'utf8').split('\n').length - 1;
    // Once written to the user's terminal by the daemon, once through the client.
    for (let run = 0; run < 2; run++) {
      const t = shell(['--', 'cat', file], agentDir, run === 0);
      expect((await t.exited).exitCode).toBe(0);
      expect(t.output.length, `run ${run}: bytes shown`).toBe(expected);
      expect(t.text().endsWith('the-last-line\r\n')).toBe(true);
    }
    const last = await until('both sessions stored as ended', () => {
      const rows = cli(COLLECTOR_BIN, ['sessions', '--data', collectorDir, '--json']).stdout.trim().split('\n').map((l) => JSON.parse(l) as { id: string; state: string });
      const lastTwo = rows.slice(-2);
      return lastTwo.length === 2 && lastTwo.every((r) => r.state === 'ended') ? lastTwo : undefined;
    });
    for (const session of last) {
      const end = sessionRecords(session.id).find((r) => r.record.fields?.['Action'] === 'end')!;
      expect(end.record.fields!['OutputBytes']).toBe(expected);
    }
  }, 120_000);

  it('lets an analyst watch a live session and end it within 1 s; the end names the analyst', async () => {
    const t = shell(['--ticket', 'CHG-7']);
    await t.waitFor(/\$ $/);
    const sessionId = await sessionIdOf(t);
    await until('the collector to list the session as live', () => {
      const listed = cli(COLLECTOR_BIN, ['sessions', 'live', '--url', collector.url, '--token', analyst, '--json']);
      return listed.stdout.split('\n').filter(Boolean).some((line) => (JSON.parse(line) as { sessionId: string; user: string }).sessionId === sessionId);
    });
    expect((await api(`/api/v1/sessions/${sessionId}/kill`, { method: 'POST' }, createToken(collectorDir, 'auditor'))).status).toBe(403);

    const watcher = new WebSocket(new URL(`/api/v1/sessions/live?id=${sessionId}`, collector.url.replace(/^http/, 'ws')), { headers: { authorization: `Bearer ${analyst}` } });
    const frames: Array<{ type: string; data?: string }> = [];
    const seen = (test: (frames: Array<{ type: string; data?: string }>) => boolean) => until('the watcher to receive it', () => test(frames));
    watcher.on('message', (data) => frames.push(JSON.parse(data.toString()) as { type: string; data?: string }));
    await new Promise((resolve) => watcher.once('open', resolve));
    // The agent starts relaying once the collector tells it someone watches: a line typed before that
    // is not relayed, so type until one is.
    for (let attempt = 0; !frames.some((frame) => frame.type === 'pty' && frame.data!.includes('live-42-view')); attempt++) {
      expect(attempt, 'output relayed to the watcher').toBeLessThan(10);
      const from = t.output.length;
      enter(t, 'echo live-$((40+2))-view');
      await t.waitFor('live-42-view\r\n', from);
      await until('the watcher to receive it', () => frames.some((frame) => frame.type === 'pty' && frame.data!.includes('live-42-view')), 1_000).catch(() => undefined);
    }

    // What would outlive a plain hangup: a process in its own session, one under nohup, one ignoring SIGHUP.
    const from = t.output.length;
    enter(t, `setsid sleep ${NAP} & nohup sleep ${NAP + 1} >/dev/null 2>&1 & (trap '' HUP; exec sleep ${NAP + 2}) & echo started-$((3*3))`);
    await t.waitFor('started-9', from);
    await until('the three sleeps to run', () => sleepers().length === 3);

    const asked = Date.now();
    const kill = await api(`/api/v1/sessions/${sessionId}/kill`, { method: 'POST' });
    expect(kill.status).toBe(202);
    const { exitCode } = await t.exited;
    const took = Date.now() - asked;
    expect(took, `session ended ${took} ms after the kill`).toBeLessThan(1_000);
    expect(exitCode).not.toBe(0);
    expect(t.text()).toContain('this session was ended by the SOC (soc-alice)');
    await seen((f) => f.some((frame) => frame.type === 'session.end'));
    watcher.close();
    expect((await ended(sessionId)).endedBy).toBe('analyst:soc-alice');
    await until('nothing of the session left running', () => sleepers().length === 0, 3_000);
    expect((await api(`/api/v1/sessions/${sessionId}/kill`, { method: 'POST' })).status).toBe(404);
  }, 60_000);

  it('reports commands whatever the start-up files and the user try: shadowed builtins, HISTSIZE=0, a nested bash, a fake report', async () => {
    const rc = join(vendor.home, '.bashrc');
    const kept = existsSync(rc) ? readFileSync(rc) : undefined;
    writeFileSync(rc, 'trap() { :; }\nbuiltin() { :; }\nunset() { :; }\nHISTSIZE=0\n__omwatch_preexec() { :; }\n');
    chownSync(rc, vendor.uid, vendor.gid);
    try {
      const t = shell();
      await t.waitFor(/\$ $/);
      const sessionId = await sessionIdOf(t);
      const lines = ['echo one-$((1))', `PS0=$(printf '\\e]69%s;' 73)`, 'echo two-$((2))', '__omwatch_preexec() { :; }', 'bash --norc -i', 'echo nested-$((3))', 'exit', 'exit'];
      for (const line of lines) {
        const from = t.output.length;
        enter(t, line);
        await t.waitFor(/\$ $/, from, 3_000).catch(() => undefined);
      }
      await t.exited;
      await ended(sessionId);
      const reported = sessionRecords(sessionId).filter((r) => r.record.category === 'shell_command').map((r) => r.record.fields!['CommandLine']);
      expect(reported).toEqual(expect.arrayContaining(['echo one-$((1))', 'echo two-$((2))', '__omwatch_preexec() { :; }', 'bash --norc -i', 'echo nested-$((3))']));
      expect(t.text()).toContain('readonly function');
    } finally {
      if (kept) writeFileSync(rc, kept);
      else rmSync(rc, { force: true });
    }
  }, 60_000);

  it('warns an idle session in its terminal, then ends it (policy shell.idleMinutes)', async () => {
    await writePolicy(`${BASE_POLICY}  idleMinutes: 0.05\n  warnBeforeSeconds: 2\n`);
    try {
      const t = shell();
      await t.waitFor(/\$ $/);
      const sessionId = await sessionIdOf(t);
      const warned = await t.waitFor(/unless you type something/);
      await t.waitFor('the session ends (policy shell.idleMinutes)', warned);
      await t.exited;
      expect((await ended(sessionId)).endedBy).toBe('idle-timeout');
    } finally {
      await writePolicy(BASE_POLICY);
    }
  }, 60_000);

  it('refuses a session without the required ticket, saying why, and records the refusal and an alert; with gate: flag it starts flagged', async () => {
    await writePolicy(`ticket:\n  required: true\n  pattern: '^CHG-[0-9]+$'\n${BASE_POLICY}`);
    try {
      const refused = shell();
      expect((await refused.exited).exitCode).toBe(1);
      expect(refused.text()).toContain('a change ticket is required: start the shell with --ticket ID');
      const wrong = shell(['--ticket', 'whatever']);
      expect((await wrong.exited).exitCode).toBe(1);
      expect(wrong.text()).toContain("the ticket 'whatever' does not match the policy's ticket pattern");
      const alerts = await until('the refusal alerts at the collector', () => {
        const lines = cli(COLLECTOR_BIN, ['export', '--data', collectorDir]).stdout.trim().split('\n').map((line) => JSON.parse(line) as Stored);
        const found = lines.filter((l) => l.record.rule?.title === 'Recorded Shell Refused by the O&M Policy');
        return found.length >= 2 ? { found, lines } : undefined;
      });
      const refusals = alerts.lines.filter((l) => l.record.category === 'remote_session' && l.record.fields!['Action'] === 'refused');
      expect(refusals.map((r) => r.record.fields!['User'])).toEqual(['omwvendor', 'omwvendor']);

      await writePolicy(`ticket:\n  required: true\n  pattern: '^CHG-[0-9]+$'\nshell:\n  recordInput: true\n  gate: flag\n`);
      const flagged = shell();
      await flagged.waitFor('this session is flagged (a change ticket is required');
      await flagged.waitFor(/\$ $/);
      const sessionId = await sessionIdOf(flagged);
      enter(flagged, 'exit');
      await flagged.exited;
      await ended(sessionId);
      const withAlert = await until('the ticket alert for the flagged session', () => {
        const lines = cli(COLLECTOR_BIN, ['export', '--data', collectorDir]).stdout.trim().split('\n').map((line) => JSON.parse(line) as Stored);
        return lines.find((l) => l.record.rule?.title === 'Remote Session Without a Valid Change Ticket' && l.record.sessionId === sessionId);
      });
      expect(withAlert).toBeDefined();
      expect(sessionRecords(sessionId).find((r) => r.record.fields?.['Action'] === 'start')!.record.fields).toMatchObject({ Flagged: true });
    } finally {
      await writePolicy(BASE_POLICY);
    }
  }, 60_000);

  it('works as a login shell: omwatch-shell -c CMD, as sshd runs a login shell for `ssh host CMD`', async () => {
    const t = new Terminal([process.execPath, SHELL_BIN, '--data', agentDir, '-c', 'echo login-$((2+2)); exit 6'], { as: vendor, cwd: vendor.home, env: { HOME: vendor.home } });
    await t.waitFor('login-4');
    expect((await t.exited).exitCode).toBe(6);
  }, 30_000);

  it('refuses outright when the agent daemon is not running (strict, the default)', async () => {
    const empty = join(dir, 'no-daemon');
    mkdirSync(empty, { mode: 0o711 });
    const t = shell([], empty);
    expect((await t.exited).exitCode).toBe(1);
    expect(t.text()).toContain('the omwatch agent is not running');
    expect(t.text()).toContain('refused (policy shell.whenDaemonDown: refuse)');
  }, 30_000);

  it('keeps the recording out of the user\'s reach, and takes who they are from the kernel, not from what they claim', async () => {
    const outbox = join(agentDir, 'outbox.db');
    const before = statSync(outbox);
    const t = shell();
    await t.waitFor(/\$ $/);
    const sessionId = await sessionIdOf(t);
    const from = t.output.length;
    enter(t, `rm -f ${outbox}; echo junk >> ${outbox}; kill -9 ${agent.child.pid}; echo tamper-$((1+1))`);
    await t.waitFor('tamper-2', from);
    // Turning command reporting off is itself reported, and alerted on.
    enter(t, 'trap - DEBUG');
    enter(t, 'exit');
    await t.exited;
    const shown = t.text(from);
    expect(shown).toMatch(/rm: cannot remove .*Permission denied/);
    expect(shown).toMatch(/Permission denied/);
    expect(shown).toMatch(/Operation not permitted/);
    expect(statSync(outbox).ino).toBe(before.ino);
    expect(agent.child.exitCode).toBeNull();
    await ended(sessionId);
    const attempt = sessionRecords(sessionId).find((r) => r.record.category === 'shell_command' && String(r.record.fields!['CommandLine']).startsWith('rm -f'));
    expect(attempt?.record.fields).toMatchObject({ User: 'omwvendor' });
    await until('the alert on turning command reporting off', () => {
      const lines = cli(COLLECTOR_BIN, ['export', '--data', collectorDir, '--session', sessionId]).stdout.trim().split('\n').map((line) => JSON.parse(line) as Stored);
      return lines.some((l) => l.record.rule?.title === 'Command Reporting Turned Off in a Recorded Shell');
    });

    // Hostile clients on the socket: no proof, someone else's file as proof, a request naming root.
    const impostor = (mode: string, foreign?: string) => {
      const result = spawnSync('/usr/bin/setpriv', ['--reuid', String(vendor.uid), '--regid', String(vendor.gid), '--init-groups', '--', process.execPath, TSX, IMPOSTOR, join(agentDir, 'shell.sock'), mode, ...(foreign ? [foreign] : [])], { encoding: 'utf8', cwd: '/', timeout: 30_000 });
      expect(result.status, result.stderr).toBe(0);
      return JSON.parse(result.stdout.trim().split('\n').at(-1)!) as { notice: string; exit: { code: number } | null; started: boolean; proofError?: string };
    };
    const rootFile = join(dir, 'root-owned');
    writeFileSync(rootFile, 'x');
    chmodSync(rootFile, 0o644);
    // Root's file that anyone may write, in a folder anyone may write, on the challenge's file system.
    const shared = join(dir, 'shared');
    mkdirSync(shared);
    chmodSync(shared, 0o777);
    const writable = join(shared, 'notes.txt');
    writeFileSync(writable, 'notes');
    chmodSync(writable, 0o666);
    for (const [mode, foreign] of [['skip'], ['symlink', rootFile], ['hardlink', rootFile], ['rename', writable], ['directory']] as const) {
      const answer = impostor(mode, foreign);
      // The kernel itself refuses to link root's file for the user (protected_hardlinks); each other trick is made.
      expect(answer.proofError, mode).toBe(mode === 'hardlink' ? 'EPERM' : undefined);
      expect(answer.started, mode).toBe(false);
      expect(answer.notice, mode).toContain('identity not proven');
      expect(answer.exit?.code, mode).toBe(1);
    }
    expect(agent.child.exitCode, 'the agent is still running').toBeNull();
    const claims = impostor('claims');
    expect(claims.started).toBe(false);
    expect(claims.notice).toMatch(/the shell's request is invalid/);
  }, 90_000);

  // Stops and restarts the agent daemon (the tests after it use the new one).
  it('with whenDaemonDown: spool, records while the agent is down and hands the session over when it is back', async () => {
    const spoolPolicy = join(dir, 'policy', 'spool.yml');
    writeFileSync(spoolPolicy, 'shell:\n  whenDaemonDown: spool\n', { mode: 0o644 });
    agent.child.kill('SIGTERM');
    await agent.exited;
    const t = shell(['--policy', spoolPolicy, '--ticket', 'CHG-9']);
    await t.waitFor('recorded to the spool');
    await t.waitFor(/\$ $/);
    const sessionId = await sessionIdOf(t);
    const from = t.output.length;
    enter(t, 'echo spooled-$((3*3))');
    await t.waitFor('spooled-9', from);
    enter(t, 'exit 5');
    expect((await t.exited).exitCode).toBe(5);
    const spooled = join(agentDir, 'spool', `${sessionId}.jsonl`);
    expect(statSync(spooled).uid).toBe(vendor.uid);

    agent = start([process.execPath, AGENT_BIN, 'run', '--data', agentDir, '--policy', policyPath], {}, { searchStderr: true });
    await agent.waitLine(/spooled session taken in/);
    expect(existsSync(spooled)).toBe(false);
    // Taken in under a new id of the daemon's, its spooled id named in the start's Reason.
    const takenIn = (spooledId: string, except?: string) => until(`the spooled session ${spooledId} at the collector`, () => cli(COLLECTOR_BIN, ['sessions', '--data', collectorDir, '--json']).stdout.trim().split('\n')
      .map((row) => JSON.parse(row) as { id: string; state: string; endedBy: string; reason: string | null; user: string })
      .find((row) => row.id !== except && row.state === 'ended' && row.reason?.includes(`(as ${spooledId})`)));
    const session = await takenIn(sessionId);
    expect(session).toMatchObject({ endedBy: 'exit', user: 'omwvendor' });
    expect(session.id).not.toBe(sessionId);
    const records = sessionRecords(session.id);
    expect(records.find((r) => r.record.fields?.['Action'] === 'start')!.record.fields).toMatchObject({ User: 'omwvendor', Ticket: 'CHG-9', Reason: expect.stringMatching(/^spooled: /) });
    expect(records.filter((r) => r.record.category === 'shell_command').map((r) => r.record.fields!['CommandLine'])).toContain('echo spooled-$((3*3))');

    // A forged spool file naming a session already held adds to nothing: it becomes a session of its own,
    // of the file's owner; one written out of order is set aside whole.
    const asVendor = (file: string, text: string) => {
      const wrote = spawnSync('/usr/bin/setpriv', ['--reuid', String(vendor.uid), '--regid', String(vendor.gid), '--init-groups', '--', '/bin/sh', '-c', `cat > ${file}`], { input: text });
      expect(wrote.status).toBe(0);
    };
    const line = (category: string, fields: Record<string, unknown>) => `${JSON.stringify({ category, timeMs: Date.now(), fields: { SessionId: sessionId, ...fields } })}\n`;
    const castBefore = cli(COLLECTOR_BIN, ['export', '--data', collectorDir, '--session', session.id, '--format', 'asciicast']).stdout;
    asVendor(join(agentDir, 'spool', `${sessionId}.jsonl`), line('remote_session', { Action: 'start', Protocol: 'local', Tool: 'omwatch-shell', User: 'root' })
      + line('session_recording', { Chunk: 0, Data: '[0.1,"o","nothing to see here\\r\\n"]\n' }) + line('remote_session', { Action: 'end', Protocol: 'local', Tool: 'omwatch-shell', EndedBy: 'exit', ExitCode: 0, Chunks: 1 }));
    const forged = await takenIn(sessionId, session.id);
    expect(forged.user).toBe('omwvendor');
    expect(cli(COLLECTOR_BIN, ['export', '--data', collectorDir, '--session', session.id, '--format', 'asciicast']).stdout).toBe(castBefore);
    const disorderId = `shell-${'0'.repeat(8)}-0000-7000-8000-${'0'.repeat(12)}`;
    const disorder = join(agentDir, 'spool', `${disorderId}.jsonl`);
    asVendor(disorder, line('session_recording', { SessionId: disorderId, Chunk: 0, Data: '' }));
    await agent.waitLine(/a spooled session was set aside/);
    await until('the file set aside', () => existsSync(`${disorder}.rejected`) && !existsSync(disorder));
    expect(cli(COLLECTOR_BIN, ['verify', '--data', collectorDir]).status).toBe(0);
  }, 90_000);

  it.skipIf(!sshdAvailable().ok)('works as an sshd ForceCommand: the remote command runs recorded, its exit code goes back over ssh', async () => {
    const sshd = await startSshd({ extraConfig: [`ForceCommand ${process.execPath} ${AGENT_BIN} shell --data ${agentDir}`] });
    try {
      const client = sshd.ssh('echo via-ssh-$((2*3)); exit 4', { tty: true });
      let out = '';
      client.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
      const code = await new Promise<number | null>((resolve) => client.once('exit', (c) => resolve(c)));
      expect(out).toContain('via-ssh-6');
      expect(code).toBe(4);
      const session = await until('the ssh session to be stored as ended', () => cli(COLLECTOR_BIN, ['sessions', '--data', collectorDir, '--json']).stdout.trim().split('\n')
        .map((line) => JSON.parse(line) as { id: string; user: string; state: string }).find((s) => s.user === sshd.user && s.state === 'ended'));
      const opened = sessionRecords(session.id).find((r) => r.record.fields?.['Action'] === 'start')!;
      expect(opened.record.fields).toMatchObject({ Protocol: 'ssh', SourceIp: '127.0.0.1', User: sshd.user });
    } finally {
      await sshd.stop();
    }
  }, 60_000);
});
