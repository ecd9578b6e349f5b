import { createHash } from 'node:crypto';
import canonicalizeModule from 'canonicalize';
import { describe, expect, it } from 'vitest';
import { canonicalJson, chainHash, GENESIS, sealRecord } from './chain.ts';

const canonicalize = canonicalizeModule as unknown as (value: unknown) => string | undefined;

/** chainHash as first written: the reference the fast path must agree with. */
function referenceChainHash(record: Readonly<Record<string, unknown>>): string {
  const { hash: _ignored, ...rest } = record;
  const prev = typeof rest['prev'] === 'string' ? rest['prev'] : '';
  return createHash('sha256').update(prev).update(canonicalize(rest)!).digest('hex');
}

/** A seeded generator of JSON values: every escape, unicode planes, lone surrogates, awkward numbers, deep nesting. */
function generator(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    // xorshift32: deterministic, so a failure names a reproducible seed.
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 0x1_0000_0000;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  const pieces = [
    'a', 'Z', '0', ' ', '"', '\\', '/', '\b', '\f', '\n', '\r', '\t', '\u0000', '\u0001', '\u001f', '\u007f', '\u0080',
    'é', 'ß', '中', '文', '\u2028', '\u2029', '\ufeff', '\uffff', '😀', '\ud834\udd1e', '\ud800', '\udfff', '\udc00x',
    'hash', 'prev', 'CommandLine', '/usr/bin/bash -c "x"', '€', 'ö', '\u0301',
  ];
  const numbers = [
    0, -0, 1, -1, 0.1, 0.2 + 0.1, 1e21, 1e-7, 1e-6, 123e-20, 1e300, -1e-300, 5e-324, Number.MAX_VALUE, Number.MIN_VALUE,
    Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 2, 2 ** 53, 333333333.3333333, 4.5, 0.002, 1e-27, 1e30, 100, 1e20, 123456789012345680000,
  ];
  const string = (): string => {
    const length = next() < 0.05 ? 90 + int(40) : int(12);
    let text = '';
    for (let i = 0; i < length; i++) text += pick(pieces);
    return text;
  };
  const number = (): number => {
    const roll = next();
    if (roll < 0.4) return pick(numbers);
    if (roll < 0.6) return int(2_000_000) - 1_000_000;
    // Any finite double, from random bits.
    const view = new DataView(new ArrayBuffer(8));
    for (;;) {
      view.setUint32(0, int(0x1_0000_0000));
      view.setUint32(4, int(0x1_0000_0000));
      const value = view.getFloat64(0);
      if (Number.isFinite(value)) return value;
    }
  };
  const key = (): string => {
    const roll = next();
    if (roll < 0.15) return String(int(20)); // integer-like keys: V8 orders them first, JCS does not
    if (roll < 0.2) return '';
    return string();
  };
  const value = (depth: number): unknown => {
    const roll = next();
    if (depth > 4 || roll < 0.25) return string();
    if (roll < 0.45) return number();
    if (roll < 0.5) return next() < 0.5;
    if (roll < 0.55) return null;
    if (roll < 0.75) {
      const items: unknown[] = [];
      for (let i = int(6); i > 0; i--) items.push(next() < 0.05 ? undefined : value(depth + 1));
      return items;
    }
    const object: Record<string, unknown> = {};
    for (let i = int(8); i > 0; i--) object[key()] = next() < 0.05 ? undefined : value(depth + 1);
    return object;
  };
  return { value, string, number, int, next };
}

describe('canonicalJson', () => {
  it('gives the RFC 8785 example (§3.2.2) byte for byte', () => {
    const input = JSON.parse('{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001],"string":"\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/","literals":[null,true,false]}');
    expect(canonicalJson(input)).toBe('{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}');
  });

  it('formats numbers as ECMAScript does: -0, 1e21, 0.1, the extremes', () => {
    expect(canonicalJson([-0, 1e21, 1e20, 0.1, 1e-7, 5e-324, Number.MAX_VALUE])).toBe('[0,1e+21,100000000000000000000,0.1,1e-7,5e-324,1.7976931348623157e+308]');
  });

  it('orders keys by UTF-16 code units, integer-like keys included', () => {
    // U+1F600 is the surrogate pair D83D DE00, so it sorts before U+FB33 by code units (after it by code points).
    expect(canonicalJson({ b: 1, a: 2, 10: 3, 2: 4, '\u20ac': 5, '\ufb33': 7, '\u{1f600}': 6 }))
      .toBe('{"10":3,"2":4,"a":2,"b":1,"\u20ac":5,"\u{1f600}":6,"\ufb33":7}');
  });

  it('refuses NaN and Infinity, as canonicalize does', () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, { a: [1, Number.NEGATIVE_INFINITY] }]) {
      expect(() => canonicalize(bad)).toThrow(/NaN|Infinity/);
      expect(() => canonicalJson(bad)).toThrow(/NaN|Infinity/);
    }
  });

  it('agrees with the canonicalize package on 20,000 random JSON values', () => {
    const random = generator(20_261_128);
    const differences: Array<{ i: number; actual: string | undefined; expected: string | undefined }> = [];
    for (let i = 0; i < 20_000; i++) {
      const value = random.value(0);
      const expected = canonicalize(value);
      const actual = canonicalJson(value);
      if (actual !== expected) differences.push({ i, actual, expected });
    }
    expect(differences.slice(0, 3)).toEqual([]);
  });

  it('agrees on objects of one shape built in different key orders, and on objects of many keys', () => {
    const random = generator(7);
    for (let i = 0; i < 500; i++) {
      const keys = Array.from({ length: 1 + random.int(40) }, () => random.string());
      const forward: Record<string, unknown> = {};
      const backward: Record<string, unknown> = {};
      for (const key of keys) forward[key] = key.length;
      for (const key of keys.toReversed()) backward[key] = key.length;
      expect(canonicalJson(forward)).toBe(canonicalize(forward));
      expect(canonicalJson(backward)).toBe(canonicalJson(forward));
    }
  });

  it('agrees on what is not JSON: toJSON, undefined and functions in arrays and objects', () => {
    const values = [
      { when: new Date(Date.UTC(2026, 10, 28)), nested: { toJSON: () => ({ z: 1, a: 2 }) } },
      [undefined, () => 1, Symbol('s'), 1],
      { a: undefined, b: Symbol('s'), c: 1 },
      { toJSON: 5, a: 1 },
    ];
    for (const value of values) expect(canonicalJson(value)).toBe(canonicalize(value));
  });
});

describe('chainHash', () => {
  it('is SHA-256(prev ‖ canonical JSON without hash), as first written, over 5,000 random records', () => {
    const random = generator(42);
    for (let i = 0; i < 5_000; i++) {
      const record = { ...(random.value(0) as object), id: random.string(), seq: i + 1, prev: random.next() < 0.1 ? GENESIS : random.string() } as Record<string, unknown>;
      if (random.next() < 0.5) record['hash'] = random.string();
      if (random.next() < 0.05) delete record['prev'];
      expect(chainHash(record)).toBe(referenceChainHash(record));
    }
  });

  it('changes when any field changes', () => {
    const record = { stream: 'abcdefgh', seq: 1, prev: GENESIS, fields: { CommandLine: 'ls -la' } };
    const base = chainHash(record);
    expect(chainHash({ ...record, seq: 2 })).not.toBe(base);
    expect(chainHash({ ...record, fields: { CommandLine: 'ls -lb' } })).not.toBe(base);
    expect(chainHash({ ...record, hash: 'anything' })).toBe(base);
  });
});

describe('sealRecord', () => {
  it('gives the chain hash and wire JSON of the record at its place, which reads back as it with its hash', () => {
    const random = generator(99);
    for (let i = 0; i < 3_000; i++) {
      const record = { ...(random.value(1) as object) } as Record<string, unknown>;
      // Records that already name a stream, seq, prev or hash of their own: the place wins, the hash is replaced.
      for (const key of ['stream', 'seq', 'prev', 'hash']) if (random.next() < 0.1) record[key] = random.string();
      const place = { stream: random.string() || 'abcdefgh', seq: i + 1, prev: random.next() < 0.5 ? GENESIS : random.string() };
      const placed = { ...record, ...place };
      const { hash, json } = sealRecord(record, place);
      expect(hash).toBe(referenceChainHash(placed));
      const parsed = JSON.parse(json) as Record<string, unknown>;
      expect(parsed['hash']).toBe(hash);
      expect(chainHash(parsed)).toBe(hash);
      expect(parsed).toEqual(JSON.parse(JSON.stringify({ ...placed, hash })));
    }
  });

  it('replaces a hash the record already carries, and refuses what is not a plain object', () => {
    const { hash, json } = sealRecord({ a: 1, hash: 'stale' }, { stream: 'abcdefgh', seq: 1, prev: GENESIS });
    expect(JSON.parse(json)).toEqual({ a: 1, hash, prev: GENESIS, seq: 1, stream: 'abcdefgh' });
    expect(() => sealRecord({ toJSON: () => ({}) }, { stream: 'abcdefgh', seq: 1, prev: GENESIS })).toThrow(TypeError);
  });
});
