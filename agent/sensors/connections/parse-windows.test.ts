// Golden tests for the `netstat -ano` parser: every fixtures/input/windows-*.txt is parsed and
// compared with fixtures/output/ (OMWATCH_UPDATE_FIXTURES=1 rewrites them after a reviewed change).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { goldenFixtures } from '../../../test/helpers/golden.ts';
import { parseNetstatAno } from './parse-windows.ts';

goldenFixtures({
  fixtures: new URL('./fixtures/', import.meta.url),
  match: /^windows-.*\.txt$/,
  parse: (path) => parseNetstatAno(readFileSync(path, 'utf8')),
});

const HEADER = '\r\nActive Connections\r\n\r\n  Proto  Local Address          Foreign Address        State           PID\r\n';

describe('parseNetstatAno', () => {
  it('keeps the scope id of a link-local IPv6 address', () => {
    const text = `${HEADER}  TCP    [fe80::1%12]:50000     [fe80::2%12]:3389      ESTABLISHED     4242\r\n`;
    expect(parseNetstatAno(text).entries).toEqual([
      {
        protocol: 'tcp',
        localIp: 'fe80::1%12',
        localPort: 50000,
        remoteIp: 'fe80::2%12',
        remotePort: 3389,
        state: 'ESTABLISHED',
        pid: 4242,
      },
    ]);
  });

  it('gives a UDP row without a state the unspecified peer of its own family', () => {
    const text = `${HEADER}  UDP    [::]:123               *:*                                    2088\r\n`;
    expect(parseNetstatAno(text).entries).toEqual([
      { protocol: 'udp', localIp: '::', localPort: 123, remoteIp: '::', remotePort: 0, state: 'UNKNOWN', pid: 2088 },
    ]);
  });

  it('maps every English TCP state onto TcpState', () => {
    const states: Array<[string, string]> = [
      ['LISTENING', 'LISTEN'],
      ['ESTABLISHED', 'ESTABLISHED'],
      ['SYN_SENT', 'SYN_SENT'],
      ['SYN_RECEIVED', 'SYN_RECV'],
      ['FIN_WAIT_1', 'FIN_WAIT1'],
      ['FIN_WAIT_2', 'FIN_WAIT2'],
      ['TIME_WAIT', 'TIME_WAIT'],
      ['CLOSE_WAIT', 'CLOSE_WAIT'],
      ['LAST_ACK', 'LAST_ACK'],
      ['CLOSING', 'CLOSING'],
      ['CLOSED', 'CLOSE'],
      ['BOUND', 'UNKNOWN'],
    ];
    const rows = states.map(([word]) => `  TCP    10.0.0.5:49800         10.0.0.9:502           ${word.padEnd(16)}900`);
    const { entries } = parseNetstatAno(`${HEADER}${rows.join('\r\n')}`);
    expect(entries.map((e) => e.state)).toEqual(states.map(([, state]) => state));
  });

  it('reads a German state whose umlaut the console code page mangled', () => {
    const text = `${HEADER}  TCP    0.0.0.0:102            0.0.0.0:0              ABH\uFFFDREN         1500\r\n`;
    expect(parseNetstatAno(text).entries[0]?.state).toBe('LISTEN');
  });

  it('takes a row with an unknown state word and an unspecified peer on port 0 for a listener', () => {
    const text = [
      `${HEADER}  TCP    0.0.0.0:502            0.0.0.0:0              ESCUCHANDO      1500`,
      '  TCP    10.0.0.5:502           10.0.0.9:49800         DESCONOCIDO     1500',
    ].join('\r\n');
    expect(parseNetstatAno(text).entries.map((e) => e.state)).toEqual(['LISTEN', 'UNKNOWN']);
  });

  it('counts rows it cannot read, and lines after the first row, but not the title and header', () => {
    const text = [
      `${HEADER}  TCP    garbage that will not parse`,
      '  TCP    1.2.3:80               0.0.0.0:0              LISTENING       4',
      '  TCP    0.0.0.0:70000          0.0.0.0:0              LISTENING       4',
      '  UDP    0.0.0.0:500            *:*                                    notapid',
      '  TCP    0.0.0.0:135            0.0.0.0:0              LISTENING       1104',
      ' [svchost.exe]',
    ].join('\r\n');
    const { entries, skipped } = parseNetstatAno(text);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ localPort: 135, pid: 1104 });
    expect(skipped).toBe(5);
  });

  it('gives nothing, and no throw, for empty, binary or non-string input', () => {
    expect(parseNetstatAno('')).toEqual({ entries: [], skipped: 0 });
    expect(parseNetstatAno('\u0000\u0001\u0002\r\n\u00ff')).toEqual({ entries: [], skipped: 0 });
    expect(parseNetstatAno(null as unknown as string)).toEqual({ entries: [], skipped: 0 });
  });
});
