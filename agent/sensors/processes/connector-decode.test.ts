import { describe, expect, it } from 'vitest';
import { decodeBatch, decodeExitStatus, FLAG_GONE, FLAG_OWNER } from './connector-decode.ts';
import { packRecord } from './testing.ts';

const record = packRecord;

describe('decodeBatch', () => {
  it('decodes each kind of record with its fields', () => {
    const batch = Buffer.concat([
      record(1, { timeMs: 1000.25, pid: 4242, parent: 4200, a: 4201, bootMs: 1_234_567.891 }),
      record(2, {
        timeMs: 1000.5, bootMs: 1_234_568, pid: 4242, flags: FLAG_OWNER, a: 1001, b: 1001,
        blobs: { cmdline: 'iptables\0-F\0', exe: '/usr/sbin/xtables-nft-multi', stat: '4242 (iptables) R 4200', cwd: '/root', sessionid: '7', environ: 'SSH_CONNECTION=10.0.0.9 50000 10.0.0.1 22\0' },
      }),
      record(3, { timeMs: 1001, bootMs: 1_234_569, pid: 4242, a: 0, b: 0 }),
      record(4, { timeMs: 1002, bootMs: 1_234_570, pid: 4242, parent: 4200, a: 4 << 8 }),
      record(9, { timeMs: 1002.5, bootMs: 1_234_570.5, pid: 4243 }),
      record(5, { timeMs: 1003, bootMs: 1_234_571, a: 1 }),
      record(6, { timeMs: 1004, bootMs: 1_234_572, a: 17 }),
      record(7, { timeMs: 1004.5, bootMs: 1_234_572.5, a: 9, b: 1 }),
      record(8, { timeMs: 1005, bootMs: 1_234_573 }),
      record(10, { timeMs: 1006, bootMs: 1_234_574 }),
    ]);
    const { records, malformed } = decodeBatch(batch);
    expect(malformed).toBe(0);
    expect(records).toEqual([
      // Start ticks as /proc/PID/stat counts them: whole 10 ms ticks of the boot clock.
      { kind: 'fork', timeMs: 1000.25, bootMs: 1_234_567.891, pid: 4242, ppid: 4200, startTicks: 123_456 },
      {
        kind: 'exec', timeMs: 1000.5, bootMs: 1_234_568, pid: 4242, gone: false, cmdlineTruncated: false, ownerUid: 1001,
        cmdline: Buffer.from('iptables\0-F\0'), exe: '/usr/sbin/xtables-nft-multi', stat: '4242 (iptables) R 4200', cwd: '/root', sessionId: '7',
        environ: Buffer.from('SSH_CONNECTION=10.0.0.9 50000 10.0.0.1 22\0'),
      },
      { kind: 'uid', timeMs: 1001, bootMs: 1_234_569, pid: 4242, realUid: 0, effectiveUid: 0 },
      { kind: 'exit', timeMs: 1002, bootMs: 1_234_570, pid: 4242, ppid: 4200, status: 1024 },
      { kind: 'sid', timeMs: 1002.5, bootMs: 1_234_570.5, pid: 4243 },
      { kind: 'overflow', timeMs: 1003, bootMs: 1_234_571, count: 1 },
      { kind: 'dropped', timeMs: 1004, bootMs: 1_234_572, count: 17 },
      // The reader stopped for good (EBADF): the sensor falls back to the scan.
      { kind: 'error', timeMs: 1004.5, bootMs: 1_234_572.5, count: 9, final: true },
      { kind: 'relisten', timeMs: 1005, bootMs: 1_234_573, count: 0 },
      { kind: 'cut', timeMs: 1006, bootMs: 1_234_574 },
    ]);
  });

  it('reports an exec whose process was gone with only what the header says', () => {
    const { records } = decodeBatch(record(2, { timeMs: 5, bootMs: 6, pid: 77, flags: FLAG_GONE, blobs: { stat: '77 (true) Z 76' } }));
    expect(records).toEqual([{ kind: 'exec', timeMs: 5, bootMs: 6, pid: 77, gone: true, cmdlineTruncated: false, stat: '77 (true) Z 76' }]);
  });

  it('orders a batch by the boot clock, keeping the order of equal times, whatever the wall clock did', () => {
    // The bulk socket (forks, exits) is read after the exec socket: its older records come later. The
    // wall clock was stepped back between the two reads: the fork's wall time is the later one.
    const { records } = decodeBatch(Buffer.concat([
      record(2, { timeMs: 20, bootMs: 200, pid: 9, blobs: { cmdline: 'a' } }),
      record(1, { timeMs: 25, bootMs: 100, pid: 9, parent: 1 }),
      record(4, { timeMs: 5, bootMs: 300, pid: 9, parent: 1 }),
      record(3, { timeMs: 5, bootMs: 300, pid: 9 }),
    ]));
    expect(records.map((r) => r.kind)).toEqual(['fork', 'exec', 'exit', 'uid']);
  });

  it('keeps " (deleted)" on the executable of a program deleted after it started, as the /proc scan does', () => {
    const { records } = decodeBatch(record(2, { pid: 3, blobs: { exe: '/tmp/x (deleted)' } }));
    expect(records[0]).toMatchObject({ exe: '/tmp/x (deleted)' });
  });

  it('stops at a malformed record and counts the bytes left, keeping what came before', () => {
    const good = record(5, { a: 1 });
    const badSize = record(1, { pid: 1 });
    badSize.writeUInt32LE(12, 0);
    const badKind = record(1, { pid: 1 });
    badKind[4] = 99;
    const blobPastEnd = record(2, { pid: 1, blobs: { cmdline: 'x' } });
    blobPastEnd.writeUInt32LE(1000, 32);
    for (const bad of [badSize, badKind, blobPastEnd, good.subarray(0, 40)]) {
      const { records, malformed } = decodeBatch(Buffer.concat([good, bad]));
      expect(records).toHaveLength(1);
      expect(malformed).toBe(bad.length);
    }
    expect(decodeBatch(Buffer.alloc(0))).toEqual({ records: [], malformed: 0 });
  });
});

describe('decodeExitStatus', () => {
  it('decodes an exit code, a signal and a core dump', () => {
    expect(decodeExitStatus(0)).toEqual({ exitCode: 0 });
    expect(decodeExitStatus(4 << 8)).toEqual({ exitCode: 4 });
    expect(decodeExitStatus(255 << 8)).toEqual({ exitCode: 255 });
    expect(decodeExitStatus(9)).toEqual({ exitCode: 137, signal: 'SIGKILL' });
    expect(decodeExitStatus(11 | 0x80)).toEqual({ exitCode: 139, signal: 'SIGSEGV', coreDumped: true });
    expect(decodeExitStatus(40)).toEqual({ exitCode: 168, signal: 'SIG40' });
  });
});
