// The evidence chain of design.md §6: every record of a stream (event or alert) carries
// `hash = SHA-256(prev ‖ canonical JSON of the record without hash)`, and `prev` is the hash of the
// record before it in the stream (GENESIS for the first). Canonical JSON is RFC 8785 (JCS), so any
// implementation, in any language, recomputes the same hashes.
import * as crypto from 'node:crypto';
import canonicalizeModule from 'canonicalize';

// The package is CommonJS whose typings declare an ES default export; at run time the default is the function.
const canonicalize = canonicalizeModule as unknown as (value: unknown) => string | undefined;

/** The `prev` of a stream's first record. */
export const GENESIS = '0'.repeat(64);

// One-shot hashing (Node ≥ 20.12) skips the Hash object and its two update calls, about twice as fast
// for records of a few hundred bytes; older runtimes keep the streaming API. Both hash UTF-8.
const sha256Hex: (text: string) => string = typeof crypto.hash === 'function'
  ? (text) => crypto.hash('sha256', text, 'hex')
  : (text) => crypto.createHash('sha256').update(text).digest('hex');

/** The hash a record must carry, given its fields (its own `hash`, if present, is left out). */
export function chainHash(record: Readonly<Record<string, unknown>>): string {
  const prev = typeof record['prev'] === 'string' ? record['prev'] : '';
  return sha256Hex(prev + canonicalWithoutHash(record));
}

/** Where a record stands in its stream: what the outbox adds to it. */
export interface ChainPlace {
  stream: string;
  seq: number;
  prev: string;
}

/**
 * Seals a record at its place in a stream: the hash and the wire JSON of `{ ...record, ...place }` (its
 * own `hash`, if any, replaced), from one serialization and without building that object. The JSON is
 * the canonical form with `hash` put first, which any JSON reader takes as the same record (a verifier
 * recomputes the canonical form itself). The record must be a plain object.
 */
export function sealRecord(record: Readonly<Record<string, unknown>>, place: ChainPlace): { hash: string; json: string } {
  if (Array.isArray(record) || (record as { toJSON?: unknown }).toJSON !== undefined) {
    throw new TypeError('sealRecord: expected a plain object record, got one with toJSON or an array');
  }
  const canonical = writePlaced(record, place);
  // Slicing first flattens the rope the serializer built, once; hashing prev + it and joining the hash
  // to it then copy flat strings, where the other order walks the rope twice (2 µs of 10 per record).
  const body = canonical.slice(1);
  const hash = sha256Hex(place.prev + canonical);
  return { hash, json: `{"hash":"${hash}",${body}` };
}

/** RFC 8785 canonical JSON of a JSON value; byte for byte what the `canonicalize` package gives. */
export function canonicalJson(value: unknown): string {
  const text = write(value);
  if (text === undefined) throw new TypeError('value has no JSON form');
  return text;
}

function canonicalWithoutHash(record: Readonly<Record<string, unknown>>): string {
  // A toJSON or an array changes what the record means as JSON: the reference path keeps those exact.
  if (Array.isArray(record) || (record as { toJSON?: unknown }).toJSON !== undefined) {
    const { hash: _ignored, ...rest } = record;
    return canonicalJson(rest);
  }
  return writeObject(record, 'hash');
}

// The serializer below mirrors `canonicalize` (Object.keys sorted by UTF-16 code units, JSON.stringify for
// strings and numbers, undefined and symbol members left out of objects and null in arrays, NaN and
// Infinity refused) without its per-object `sort()` and string reduce: keys are ordered once per object
// shape, and short strings that need no escaping are quoted in place. Anything that is not a JSON value
// (bigint, function, an object with toJSON) goes to `canonicalize` itself, so even those agree.
// chain.test.ts compares both over many random values.

function write(value: unknown): string | undefined {
  switch (typeof value) {
    case 'string':
      return quote(value);
    case 'number':
      if (!Number.isFinite(value)) throw new Error(Number.isNaN(value) ? 'NaN is not allowed' : 'Infinity is not allowed');
      // Number to string is ECMAScript's, which RFC 8785 adopts (and JSON.stringify uses); -0 gives "0".
      return `${value}`;
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      if (value === null) return 'null';
      if ((value as { toJSON?: unknown }).toJSON !== undefined) return canonicalize(value);
      if (Array.isArray(value)) return writeArray(value);
      return writeObject(value as Readonly<Record<string, unknown>>, undefined);
    default:
      return canonicalize(value);
  }
}

function writeArray(items: readonly unknown[]): string {
  let out = '[';
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    if (i > 0) out += ',';
    // `${…}` keeps canonicalize's rendering of a member with no JSON form (a function) as "undefined".
    out += item === undefined || typeof item === 'symbol' ? 'null' : `${write(item)}`;
  }
  return `${out}]`;
}

function writeObject(object: Readonly<Record<string, unknown>>, skip: string | undefined): string {
  const keys = Object.keys(object);
  if (keys.length === 0) return '{}';
  const shape = shapeOf(keys);
  // Object.values lists the values in Object.keys order: one call instead of a keyed load per member.
  const values = Object.values(object);
  const { order, from } = shape;
  let prefixes = shape.first;
  let out = '{';
  for (let i = 0; i < order.length; i++) {
    if (order[i] === skip) continue;
    const member = values[from[i]!];
    if (member === undefined || typeof member === 'symbol') continue;
    out += `${prefixes[i]!}${write(member)}`;
    prefixes = shape.rest;
  }
  return `${out}}`;
}

/** writeObject of `{ ...object, ...place }` without `hash`. */
function writePlaced(object: Readonly<Record<string, unknown>>, place: ChainPlace): string {
  const keys = Object.keys(object);
  const values = Object.values(object);
  const shape = shapeOf(keys);
  const plan = (shape.placed ??= placedPlan(shape));
  let prefixes = plan.first;
  let out = '{';
  for (let i = 0; i < plan.from.length; i++) {
    const from = plan.from[i]!;
    const member = from === STREAM ? place.stream : from === SEQ ? place.seq : from === PREV ? place.prev : values[from];
    if (member === undefined || typeof member === 'symbol') continue;
    out += `${prefixes[i]!}${write(member)}`;
    prefixes = plan.rest;
  }
  return `${out}}`;
}

// Where a placed member comes from, when not from the object's own values.
const STREAM = -1;
const SEQ = -2;
const PREV = -3;

function placedPlan(shape: Shape): Placed {
  const own = shape.keys.filter((key) => key !== 'hash' && key !== 'stream' && key !== 'seq' && key !== 'prev');
  const order = sortKeys([...own, 'stream', 'seq', 'prev']);
  const from = order.map((key) => (key === 'stream' ? STREAM : key === 'seq' ? SEQ : key === 'prev' ? PREV : shape.keys.indexOf(key)));
  const first = order.map((key) => `${quote(key)}:`);
  return { from, first, rest: first.map((prefix) => `,${prefix}`) };
}

/** How to write an object of one shape with a stream place: each member's source, in canonical order. */
interface Placed {
  from: readonly number[];
  first: readonly string[];
  rest: readonly string[];
}

/** An object's keys in insertion order, their canonical order, and each key quoted with and without a comma. */
interface Shape {
  keys: readonly string[];
  order: readonly string[];
  /** For each key in canonical order, its index in insertion order. */
  from: readonly number[];
  first: readonly string[];
  rest: readonly string[];
  placed?: Placed;
  next: Shape | undefined;
}

// Keyed by the first key; objects of one shape (every envelope, every `fields` of a category) find theirs
// by comparing key lists, which V8 holds as internalized strings. Bounded, so odd inputs cannot grow it.
const shapes = new Map<string, Shape>();
const MAX_SHAPES = 4_096;
let shapeCount = 0;

function shapeOf(keys: string[]): Shape {
  const head = keys[0]!;
  const chain = shapes.get(head);
  for (let shape = chain; shape !== undefined; shape = shape.next) {
    if (sameKeys(shape.keys, keys)) return shape;
  }
  const order = sortKeys(keys.slice());
  const first = order.map((key) => `${quote(key)}:`);
  const shape: Shape = { keys, order, from: order.map((key) => keys.indexOf(key)), first, rest: first.map((prefix) => `,${prefix}`), next: chain };
  if (shapeCount < MAX_SHAPES) {
    shapes.set(head, shape);
    shapeCount++;
  }
  return shape;
}

function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Sorts by UTF-16 code units, as `Array.prototype.sort()` does; insertion sort for the usual few keys. */
function sortKeys(keys: string[]): string[] {
  if (keys.length > 16) return keys.sort();
  for (let i = 1; i < keys.length; i++) {
    const key = keys[i]!;
    let j = i - 1;
    while (j >= 0 && keys[j]! > key) {
      keys[j + 1] = keys[j]!;
      j--;
    }
    keys[j + 1] = key;
  }
  return keys;
}

/** JSON.stringify of a string; short strings with nothing to escape (the usual case) skip the call. */
function quote(text: string): string {
  if (text.length > 96) return JSON.stringify(text);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    // Control characters, quote, backslash, and any surrogate (a lone one is escaped by JSON.stringify).
    if (code < 0x20 || code === 0x22 || code === 0x5c || (code >= 0xd800 && code <= 0xdfff)) return JSON.stringify(text);
  }
  return `"${text}"`;
}
