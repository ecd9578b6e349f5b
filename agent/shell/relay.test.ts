// The pty relay's thread (native/pty-relay) on a FIFO standing in for the pty's master: the test writes
// output in the pieces it chooses and waits for the records each piece produces. The relay runs in a
// real pty in test/shell.test.ts.
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync, constants as fsConstants } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn as spawnPty } from 'node-pty';
import { afterEach, describe, expect, it } from 'vitest';
import { until as waitUntil } from '../../test/helpers/delivery.ts';
import { parseCommandReport } from './marks.ts';
import { PtyRelay, type RelayRecord } from './relay.ts';

const report = (mark: string, cwd: string, history: string) =>
  // oxlint-disable-next-line no-control-regex
  `\x1b]6973;${mark};${cwd.replace(/[%;\x07\x1b\r\n]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`)};${history}\n\x07`;

/** The command reports among the records, parsed. */
const reports = (records: RelayRecord[]) => records.flatMap((r) => (r.type === 'c' ? [parseCommandReport(r.bytes)] : []));

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

/** A relay reading a FIFO; `write` feeds it, `next` waits for the records that follow. */
function fifoRelay(mark: string, limitBytes = 1024 * 1024, totalLimitBytes = 1024 * 1024 * 1024) {
  const dir = mkdtempSync(join(tmpdir(), 'omwatch-relay-'));
  const path = join(dir, 'master');
  execFileSync('mkfifo', [path]);
  const readFd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  const writeFd = openSync(path, fsConstants.O_WRONLY);
  const records: RelayRecord[] = [];
  let waiter: (() => void) | undefined;
  let take = true;
  const relay = new PtyRelay({
    master: readFd, terminal: undefined, mark, recordInput: false, limitBytes, totalLimitBytes,
    notify: () => {
      if (take) records.push(...relay.take());
      waiter?.();
    },
  });
  closeSync(readFd);
  let writeOpen = true;
  const closeWriter = () => {
    if (writeOpen) closeSync(writeFd);
    writeOpen = false;
  };
  cleanups.push(() => {
    relay.close();
    closeWriter();
    rmSync(dir, { recursive: true, force: true });
  });
  /** Resolves once records satisfy `done`. */
  const until = (done: (all: RelayRecord[]) => boolean) => new Promise<void>((resolve) => {
    const check = () => {
      if (!done(records)) return;
      waiter = undefined;
      resolve();
    };
    waiter = check;
    check();
  });
  const shown = () => records.flatMap((r) => (r.type === 'o' ? [r.bytes.toString()] : [])).join('');
  const taking = (on: boolean) => {
    take = on;
    if (on) {
      records.push(...relay.take());
      waiter?.();
    }
  };
  return { relay, records, until, shown, path, taking, write: (text: string) => writeSync(writeFd, text), closeWriter };
}

describe('pty relay', () => {
  it('takes out this session\'s reports, builtins and multi-line commands included, and keeps the rest as shown', async () => {
    const { write, until, records, shown } = fifoRelay('m1');
    write(`before${report('m1', '/tmp/a;b%c', '   12  cd /opt')}middle${report('m1', '/opt', '   13* for i in 1 2\ndo echo "$i;€"; done')}after`);
    await until((all) => all.filter((r) => r.type === 'c').length === 2 && shown().endsWith('after'));
    expect(shown()).toBe('beforemiddleafter');
    expect(reports(records)).toEqual([{ commandLine: 'cd /opt', cwd: '/tmp/a;b%c' }, { commandLine: 'for i in 1 2\ndo echo "$i;€"; done', cwd: '/opt' }]);
    // Order kept: what was shown before a report is recorded before it.
    expect(records.map((r) => r.type).join('')).toMatch(/^o+co+co+$/);
  });

  it('leaves a report with another mark as data: output cannot forge a command', async () => {
    const { write, until, records, shown } = fifoRelay('secret');
    const forged = report('guess', '/', '   1  rm -rf /');
    write(`x${forged}y`);
    await until(() => shown().endsWith('y'));
    expect(records.some((r) => r.type === 'c')).toBe(false);
    expect(shown()).toBe(`x${forged}y`);
  });

  it('finds a report cut across reads, and holds back only a possible start of one, for a moment', async () => {
    const { write, until, records, shown, relay } = fifoRelay('m');
    const whole = `ab${report('m', '/', '    1  pwd')}cd\x1b]69`;
    for (let at = 0; at < whole.length; at += 3) {
      write(whole.slice(at, at + 3));
      // Each piece is read on its own: the next is written once the relay has read this one.
      while (relay.stats().readBytes < Math.min(at + 3, whole.length)) await new Promise((resolve) => setImmediate(resolve));
    }
    await until(() => shown() === 'abcd\x1b]69');
    expect(reports(records).map((c) => c?.commandLine)).toEqual(['pwd']);
    // The held '\x1b]69' came alone, after the wait: it was not shown with 'cd' in case a report followed.
    const last = records.filter((r) => r.type === 'o').at(-1);
    expect(last?.type === 'o' ? last.bytes.toString() : undefined).toBe('\x1b]69');
  });

  it('ends with x once asked to finish, after everything written before', async () => {
    const { write, until, records, relay, closeWriter } = fifoRelay('m');
    write('last words');
    closeWriter();
    relay.finish();
    await until((all) => all.at(-1)?.type === 'x');
    expect(records.flatMap((r) => (r.type === 'o' ? [r.bytes.toString()] : [])).join('')).toBe('last words');
  });

  it('stops reading at its limit until the queue is taken: the writer waits, nothing is dropped', async () => {
    const { relay, records, until, shown, path, taking } = fifoRelay('m', 64 * 1024);
    taking(false);
    // A program floods the terminal while the recording takes nothing.
    const writer = spawn('sh', ['-c', 'head -c 1048576 /dev/zero | tr "\\0" y > "$0"', path], { stdio: 'ignore' });
    let writerDone = false;
    const exited = new Promise<void>((resolve) => writer.on('exit', () => {
      writerDone = true;
      resolve();
    }));
    // The relay says when it reaches its limit (a notify with the queue full).
    await until(() => relay.stats().behind);
    expect(relay.stats().queuedBytes).toBeGreaterThanOrEqual(64 * 1024);
    // 64 KiB queued and the FIFO's own 64 KiB at most: the writer is held back, not finished.
    expect(writerDone).toBe(false);
    taking(true);
    await exited;
    await until(() => shown().length === 1048576);
    expect(shown()).toBe('y'.repeat(1048576));
    expect(relay.stats().throttled).toBeGreaterThanOrEqual(1);
    expect(records.every((r, i) => i === 0 || r.atMs >= records[i - 1]!.atMs)).toBe(true);
  });

  it('keeps all sessions together within their budget: a second flooding session waits, nothing is dropped', async () => {
    const budget = 128 * 1024;
    const floods = [fifoRelay('m', 4 * 1024 * 1024, budget), fifoRelay('m', 4 * 1024 * 1024, budget)];
    for (const flood of floods) flood.taking(false);
    const size = 1024 * 1024;
    const writers = floods.map(({ path }) => spawn('sh', ['-c', `head -c ${size} /dev/zero | tr "\\0" z > "$0"`, path], { stdio: 'ignore' }));
    let done = 0;
    const finished = writers.map((writer) => new Promise<void>((resolve) => writer.on('exit', () => resolve(void done++))));
    // Both have looked again while the budget was spent (each waits BUDGET_RECHECK_MS between looks).
    await waitUntil('both relays to wait for the budget', () => floods.every(({ relay }) => relay.stats().budgetWaits >= 2));
    const queued = floods.reduce((sum, { relay }) => sum + relay.stats().queuedBytes, 0);
    // The budget, and at most one read (64 KiB) each past it.
    expect(queued).toBeGreaterThanOrEqual(budget);
    expect(queued).toBeLessThanOrEqual(budget + 2 * (64 * 1024 + 16));
    expect(done, 'the writers wait: neither megabyte was read whole').toBe(0);
    for (const flood of floods) flood.taking(true);
    await Promise.all(finished);
    for (const flood of floods) await flood.until(() => flood.shown().length === size);
    expect(floods.map((flood) => flood.shown())).toEqual(['z'.repeat(size), 'z'.repeat(size)]);
  });
});

describe('pty relay on a real pty', () => {
  it('takes keys until the shell is 1 MiB behind, then says no until it has read them', async () => {
    // A program that takes no input until it is continued: keys pile up in the relay.
    const pty = spawnPty('/bin/sh', ['-c', 'stty raw -echo; kill -STOP $$; exec cat >/dev/null'], { encoding: null });
    const master = (pty as unknown as Record<string, unknown>)['_fd'] as number;
    let room: () => void = () => {};
    const roomAgain = new Promise<void>((resolve) => (room = resolve));
    const relay = new PtyRelay({
      master, terminal: undefined, mark: 'm', recordInput: false, limitBytes: 1024 * 1024, totalLimitBytes: 1024 * 1024 * 1024,
      notify: () => {
        if (relay.take().some((r) => r.type === 'w')) room();
      },
    });
    cleanups.push(() => {
      relay.close();
      pty.kill('SIGKILL');
    });
    await waitUntil('the program to stop itself', () => readFileSync(`/proc/${pty.pid}/stat`, 'latin1').split(') ')[1]?.startsWith('T') ?? false);
    const key = Buffer.alloc(64 * 1024, 'k');
    let sent = 0;
    while (relay.input(key)) {
      sent += key.length;
      expect(sent, 'input refused by 2 MiB').toBeLessThan(2 * 1024 * 1024);
    }
    process.kill(pty.pid, 'SIGCONT');
    await roomAgain;
    expect(relay.input(key)).toBe(true);
  });

  it('hands over steady output while it still comes (after a quarter second), though the terminal is never quiet for 20 ms', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'omwatch-relay-'));
    const path = join(dir, 'master');
    execFileSync('mkfifo', [path]);
    const readFd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    // A terminal of our own (here /dev/null): output is then batched, not handed over at every read.
    const terminal = openSync('/dev/null', fsConstants.O_RDWR);
    let firstTaken: number | undefined;
    const relay = new PtyRelay({
      master: readFd, terminal, mark: 'm', recordInput: false, limitBytes: 64 * 1024 * 1024, totalLimitBytes: 1024 * 1024 * 1024,
      notify: () => {
        if (relay.take().some((r) => r.type === 'o')) firstTaken ??= Date.now();
      },
    });
    closeSync(readFd);
    closeSync(terminal);
    cleanups.push(() => {
      relay.close();
      rmSync(dir, { recursive: true, force: true });
    });
    // 10 bytes every 5 ms for 1.5 s.
    const started = Date.now();
    const writer = spawn('sh', ['-c', 'i=0; while [ $i -lt 300 ]; do printf 0123456789; sleep 0.005; i=$((i+1)); done > "$0"', path], { stdio: 'ignore' });
    const writerEnded = new Promise<number>((resolve) => writer.on('exit', () => resolve(Date.now())));
    const ended = await writerEnded;
    expect(firstTaken, 'output handed over while it was still coming').toBeDefined();
    expect(firstTaken!).toBeLessThan(ended);
    expect(firstTaken! - started).toBeLessThan(1_000);
  });
});
