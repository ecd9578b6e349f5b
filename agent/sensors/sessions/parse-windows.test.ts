// Golden tests for the `query user` / `qwinsta` parsers: every fixtures/input/windows-*.txt is parsed
// and compared with fixtures/output/ (OMWATCH_UPDATE_FIXTURES=1 rewrites them after a reviewed change).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { goldenFixtures } from '../../../test/helpers/golden.ts';
import { parseQueryUser, parseQwinsta, rdpSessionsFrom } from './parse-windows.ts';

const fixtures = new URL('./fixtures/', import.meta.url);

function parserFor(name: string): typeof parseQueryUser {
  if (name.startsWith('windows-quser-')) return parseQueryUser;
  if (name.startsWith('windows-qwinsta-')) return parseQwinsta;
  throw new Error(`expected a fixture named windows-quser-* or windows-qwinsta-*, got ${name}`);
}

goldenFixtures({
  fixtures,
  match: /^windows-.*\.txt$/,
  parse: (path, name) => parserFor(name)(readFileSync(path, 'utf8')),
});

const QUSER_HEADER = ' USERNAME              SESSIONNAME        ID  STATE   IDLE TIME  LOGON TIME';
const QWINSTA_HEADER = ' SESSIONNAME       USERNAME                 ID  STATE   TYPE        DEVICE';

describe('parseQueryUser', () => {
  it('keeps the user of a disconnected session whose SESSIONNAME is empty (no column shift)', () => {
    const text = [
      QUSER_HEADER,
      ' maint                                     3  Disc        1+02:03  4/6/2022 6:51 AM',
    ].join('\r\n');
    expect(parseQueryUser(text)).toEqual({
      entries: [{ user: 'maint', id: 3, state: 'Disc', idle: '1+02:03', logonTime: '4/6/2022 6:51 AM' }],
      skipped: 0,
    });
  });

  it('drops the > marker of the current session and reads none/. idle values as printed', () => {
    const text = [
      `\uFEFF${QUSER_HEADER}`,
      '>admin                 console             1  Active      none   8/10/2024 7:00 AM',
      ' vendor                rdp-tcp#12          2  Active          .  8/10/2024 7:05 AM',
    ].join('\r\n');
    const { entries } = parseQueryUser(text);
    expect(entries.map((e) => [e.user, e.sessionName, e.idle])).toEqual([
      ['admin', 'console', 'none'],
      ['vendor', 'rdp-tcp#12', '.'],
    ]);
  });

  it('does not take a digit inside a user name for the session id', () => {
    const text = [QUSER_HEADER, ' line 2                console             7  Active          5  8/10/2024 7:00 AM'].join('\n');
    expect(parseQueryUser(text).entries).toEqual([
      { user: 'line 2', sessionName: 'console', id: 7, state: 'Active', idle: '5', logonTime: '8/10/2024 7:00 AM' },
    ]);
  });

  it('reads rows whose spacing was changed by hand (published captures), falling back to words', () => {
    // Rows as published in UNT-CAS/QuserObject Examples/ConvertTo-QuserObject.Four_Users_Two_Disc_Three_Idle.psd1
    // and a TryHackMe write-up: names were edited, so the columns no longer line up.
    const text = [
      'USERNAME         SESSIONNAME  ID  STATE   IDLE TIME  LOGON TIME',
      ' admin.xxxxxxxx                2  Disc     15+15:12  7/20/2017 1:19 PM',
      ' admin.xxxxx      rdp-tcp#54   3  Active       1:39  7/21/2017 5:35 AM',
      '>vertigoray          console   5  Active          .  8/9/2017 4:40 PM',
      ' luke                                    3  Disc            .  4/6/2022 6:51 AM',
    ].join('\r\n');
    const { entries, skipped } = parseQueryUser(text);
    expect(skipped).toBe(0);
    expect(entries.map((e) => [e.user, e.sessionName, e.id, e.state])).toEqual([
      ['admin.xxxxxxxx', undefined, 2, 'Disc'],
      ['admin.xxxxx', 'rdp-tcp#54', 3, 'Active'],
      ['vertigoray', 'console', 5, 'Active'],
      ['luke', undefined, 3, 'Disc'],
    ]);
  });

  it('gives nothing, and no throw, for empty, message-only or garbage input', () => {
    expect(parseQueryUser('')).toEqual({ entries: [], skipped: 0 });
    expect(parseQueryUser('No User exists for *\r\n')).toEqual({ entries: [], skipped: 0 });
    expect(parseQueryUser(`${QUSER_HEADER}\n\u0000\u0001garbage\n>>>\n 12`)).toEqual({ entries: [], skipped: 3 });
    expect(parseQueryUser(undefined as unknown as string)).toEqual({ entries: [], skipped: 0 });
  });
});

describe('parseQwinsta', () => {
  it('puts the user of a disconnected session in `user`, not in `sessionName`', () => {
    const text = [QWINSTA_HEADER, '                   engineer                  3  Disc'].join('\r\n');
    expect(parseQwinsta(text).entries).toEqual([{ user: 'engineer', id: 3, state: 'Disc' }]);
  });

  it('reads the listener line (id 65536) as a session-less entry', () => {
    const text = [QWINSTA_HEADER, ' rdp-tcp                                 65536  Listen'].join('\n');
    expect(parseQwinsta(text).entries).toEqual([{ sessionName: 'rdp-tcp', id: 65536, state: 'Listen' }]);
  });

  it('reads an unnamed idle WinStation of old servers, whose id leads the line', () => {
    const text = [QWINSTA_HEADER, '                                             2  Idle'].join('\n');
    expect(parseQwinsta(text).entries).toEqual([{ id: 2, state: 'Idle' }]);
  });
});

describe('rdpSessionsFrom', () => {
  it('returns the rdp-tcp#N sessions and leaves out the listener, console and services', () => {
    const text = readFileSync(new URL('./input/windows-qwinsta-rds-server.txt', fixtures), 'utf8');
    expect(rdpSessionsFrom(parseQwinsta(text).entries)).toEqual([
      { user: 'vendor1', sessionName: 'rdp-tcp#0', id: 2, state: 'Active' },
    ]);
  });

  it('matches the name whatever its case, as WTS APIs print RDP-Tcp#0', () => {
    expect(rdpSessionsFrom([{ sessionName: 'RDP-Tcp#0', id: 2, state: 'Active' }])).toHaveLength(1);
    expect(rdpSessionsFrom([{ sessionName: 'RDP-Tcp', id: 65536, state: 'Listen' }])).toHaveLength(0);
  });
});
