import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { goldenFixtures } from '../../../test/helpers/golden.ts';
import { parseSshConnection, parseSshdTitle, parseUtmp, UTMP_RECORD_BYTES } from './parse.ts';

// linux-utmp-*.bin: /run/utmp as sshd wrote it on this host during the sshd integration test
// (a pty session), and the same with a truncated tail and a record of an impossible type.
goldenFixtures({
  fixtures: new URL('./fixtures/', import.meta.url),
  match: /^linux-utmp.*\.bin$/,
  parse: (path) => parseUtmp(readFileSync(path)),
});

describe('parseSshdTitle', () => {
  it.each([
    ['sshd: alice@pts/0', { role: 'session', user: 'alice', tty: 'pts/0', channel: true }],
    ['sshd: alice@notty', { role: 'session', user: 'alice', channel: true }],
    ['sshd: alice@pts/3,pts/4', { role: 'session', user: 'alice', tty: 'pts/3', channel: true }],
    ['sshd-session: bob@pts/1', { role: 'session', user: 'bob', tty: 'pts/1', channel: true }],
    ['sshd: alice@pts/0                                  ', { role: 'session', user: 'alice', tty: 'pts/0', channel: true }],
    ['sshd: alice [priv]', { role: 'priv', user: 'alice' }],
    ['sshd: alice [net]', { role: 'preauth' }],
    ['sshd: alice', { role: 'session', user: 'alice', channel: false }],
    ['sshd: [accepted]', { role: 'preauth' }],
    ['sshd: unknown [net]', { role: 'preauth' }],
    ['sshd: /usr/sbin/sshd -D -f /etc/ssh/sshd_config [listener] 0 of 10-100 startups', { role: 'listener' }],
  ])('%s', (title, expected) => {
    expect(parseSshdTitle(title)).toEqual(expected);
  });

  it('is not fooled by other programs or by a user name with an @ in it', () => {
    expect(parseSshdTitle('/usr/sbin/sshd -D')).toBeUndefined();
    expect(parseSshdTitle('bash -c sshd: root@pts/0')).toBeUndefined();
    expect(parseSshdTitle('sshd: evil@pts/0 extra')).toEqual({ role: 'preauth' });
  });
});

describe('parseSshConnection', () => {
  it('reads the four parts', () => {
    expect(parseSshConnection('127.0.0.1 35440 127.0.0.1 2222')).toEqual({ clientIp: '127.0.0.1', clientPort: 35440, serverIp: '127.0.0.1', serverPort: 2222 });
    expect(parseSshConnection('fe80::1%eth0 5000 fe80::2%eth0 22')?.clientIp).toBe('fe80::1%eth0');
  });
  it('refuses anything else', () => {
    for (const bad of [undefined, '', '1.2.3.4 x 5.6.7.8 22', '1.2.3.4 1 5.6.7.8', '1.2.3.4 0 5.6.7.8 22', '1.2.3.4 1 5.6.7.8 70000']) {
      expect(parseSshConnection(bad)).toBeUndefined();
    }
  });
});

describe('parseUtmp on bad input', () => {
  it('never throws and counts what it skips', () => {
    expect(parseUtmp(new Uint8Array(0))).toEqual({ records: [], malformed: 0 });
    expect(parseUtmp(new Uint8Array(100))).toEqual({ records: [], malformed: 1 });
    const garbage = new Uint8Array(UTMP_RECORD_BYTES * 3).map((_, i) => (i * 7919) % 256);
    const parsed = parseUtmp(garbage);
    expect(parsed.records.length + parsed.malformed).toBeLessThanOrEqual(3);
  });
  it('refuses a user name with control characters (it would be a terminal escape)', () => {
    const record = new Uint8Array(UTMP_RECORD_BYTES);
    new DataView(record.buffer).setInt16(0, 7, true);
    record.set(Buffer.from('pts/0'), 8);
    record.set(Buffer.from('ev\u001b[2Jil'), 44);
    expect(parseUtmp(record)).toEqual({ records: [], malformed: 1 });
  });
});
