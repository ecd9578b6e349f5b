import { describe, expect, it } from 'vitest';
import { hash128 } from './hash.ts';
import { alertFor } from './index.ts';

describe('hash128', () => {
  // Reference values: mmh3.hash128(text.encode('utf-16-le'), 0, x64arch=False) of the Python mmh3
  // package (the reference C code), its four 32-bit words in order.
  it.each([
    ['', '00000000000000000000000000000000'],
    ['a', '033bb196ccef4fe1ccef4fe1ccef4fe1'],
    ['abc', '2b5b97a320f75fb55012c2b45012c2b4'],
    ['rule-1\u0000e1', '0d792a8fa9751184d2b9643199d50298'],
    ['hello world, 0193a000-0000-7000-8000-000000000001', '6984d2c82ed76fa543a575b73d97500a'],
    ['Ünïcödé €', 'dface78ec0752df067b4c74e813c0ed1'],
  ])('MurmurHash3 x86_128 of %j over UTF-16LE', (text, expected) => {
    expect(hash128(text)).toBe(expected);
  });
});

describe('alert ids', () => {
  const rule = { id: 'r1', title: 'T', level: 'high' as const, tags: [], author: 'a', logsource: {}, source: { file: 'f', line: 1 } };
  const event = (n: number) => ({ id: `0193a000-0000-7000-8000-${String(n).padStart(12, '0')}`, time: '2026-11-28T10:00:00Z', category: 'process_creation', product: 'linux', fields: {} });

  it('are the same for the same match and UUID-shaped', () => {
    const id = alertFor(rule, event(1)).id;
    expect(alertFor(rule, event(1)).id).toBe(id);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('differ across 200,000 events and across rules', () => {
    const ids = new Set<string>();
    for (let n = 0; n < 100_000; n++) {
      ids.add(alertFor(rule, event(n)).id);
      ids.add(alertFor({ ...rule, id: 'r2' }, event(n)).id);
    }
    expect(ids.size).toBe(200_000);
  });
});
