import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { goldenFixtures } from '../../../test/helpers/golden.ts';
import { parseEndpoint, parseProcNetTcp, socketInode } from './parse.ts';

// linux-tcp*.txt were read from this host's /proc/net while a dual-stack and a ::1 listener had
// clients; linux-tcp6-edge.txt is made by hand: a link-local pair, an unknown state, garbage lines.
goldenFixtures({
  fixtures: new URL('./fixtures/', import.meta.url),
  match: /^linux-tcp.*\.txt$/,
  parse: (path) => parseProcNetTcp(readFileSync(path, 'utf8')),
});

describe('parseEndpoint', () => {
  it('reads IPv4 in host byte order', () => {
    expect(parseEndpoint('0100007F:0016')).toEqual({ ip: '127.0.0.1', port: 22 });
  });
  it('reports an IPv4 client of a dual-stack socket as plain IPv4', () => {
    expect(parseEndpoint('0000000000000000FFFF00000100007F:A954')).toEqual({ ip: '127.0.0.1', port: 43348 });
  });
  it('compresses IPv6 as RFC 5952 text', () => {
    expect(parseEndpoint('00000000000000000000000001000000:1BA0')).toEqual({ ip: '::1', port: 7072 });
    expect(parseEndpoint('000080FE000000000000000001000000:0D3D')).toEqual({ ip: 'fe80::1', port: 3389 });
    expect(parseEndpoint('B80D0120000000000000000000000000:0016')).toEqual({ ip: '2001:db8::', port: 22 });
  });
  it('refuses what is not an endpoint', () => {
    for (const bad of ['', 'zz', '0100007F', '0100007F:GGGG', '0100007F:10000', '01007F:0016']) expect(parseEndpoint(bad)).toBeUndefined();
  });
});

describe('socketInode', () => {
  it('reads socket links and nothing else', () => {
    expect(socketInode('socket:[12345]')).toBe(12345);
    expect(socketInode('pipe:[12345]')).toBeUndefined();
    expect(socketInode('/dev/null')).toBeUndefined();
    expect(socketInode('socket:[x]')).toBeUndefined();
  });
});
