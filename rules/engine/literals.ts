// The engine's fast path. Most Sigma tests are a literal a field must equal, start with, end with or
// contain, case-insensitively. Instead of running each rule's tests one by one, every such literal of every rule is put
// into one Aho–Corasick automaton per field; an event's field is scanned once, and each test becomes a
// lookup. Tests are deduplicated across rules (hundreds of rules ask for `Image|endswith: /bash`).
import { asText, KEYWORD_FIELD, type EventView } from './view.ts';

export type LiteralKind = 'eq' | 'prefix' | 'suffix' | 'contains';

interface FieldAutomaton {
  /** Character code → character class; class 0 is every character no needle contains. */
  classOf: Uint16Array;
  classes: number;
  /**
   * The full transition function (a DFA): the next row = delta[row + class], where a state's row is
   * state × classes, complemented when needles end in that state. One array type
   * for every automaton, so the scan loop stays monomorphic (a mix of typed-array kinds made it ~10× slower).
   */
  delta: Int32Array;
  /** Per state: the needles that end here (through dictionary links too); empty for most. */
  out: number[][];
  hasOut: Uint8Array;
  /** Whether some needle could occur in a number's text, or in `true`/`false`: keyword scans skip such values otherwise. */
  numbersMayMatch: boolean;
  booleansMayMatch: boolean;
  needles: string[];
  needleLength: Int32Array;
  /** Per needle n: its tests are `tests[testsFrom[n]]` up to `tests[testsFrom[n + 1]]`, each with its kind. */
  testsFrom: Int32Array;
  tests: Int32Array;
  kinds: Uint8Array;
  /** Per test: the event generation in which it last held. */
  stamp: Int32Array;
  /** The tests that held in the last scan, the first `heldCount` of them (no array is resized per event). */
  held: Int32Array;
  heldCount: number;
}

interface Pending {
  needles: Map<string, number>;
  testsOf: Array<Array<{ test: number; kind: LiteralKind }>>;
  tests: Map<string, number>;
}

/**
 * Stamps that mark which tests hold for the event being evaluated. One counter for every index, so a
 * stamp is never mistaken for another event's, whichever engines share an index.
 */
let lastGeneration = 0;
const allIndexes = new Set<WeakRef<LiteralIndex>>();

export function nextGeneration(): number {
  lastGeneration = (lastGeneration + 1) | 0;
  if (lastGeneration <= 0) {
    // After 2^31 events the counter wraps: forget every stamp once, then go on.
    for (const ref of allIndexes) ref.deref()?.resetStamps();
    lastGeneration = 1;
  }
  return lastGeneration;
}

/**
 * One field's tests in one index. Matchers hold their slot directly, so a test costs no lookup: the
 * slot scans the event's value once per event and then answers each test from its stamps.
 */
export class FieldSlot {
  readonly field: string;
  automaton: FieldAutomaton | undefined;
  #scanned = -1;
  #present = false;

  constructor(field: string) {
    this.field = field;
  }

  holds(view: EventView, test: number): boolean {
    this.#scan(view);
    return this.#present && this.automaton!.stamp[test] === view.generation;
  }

  /** Whether any of the tests holds. */
  anyHolds(view: EventView, tests: readonly number[]): boolean {
    this.#scan(view);
    if (!this.#present) return false;
    const { stamp } = this.automaton!;
    for (let i = 0; i < tests.length; i++) if (stamp[tests[i]!] === view.generation) return true;
    return false;
  }

  /** How many tests hold for this event (scanning the field if not yet done); they are `held`'s first. */
  heldCount(view: EventView): number {
    this.#scan(view);
    return this.#present ? this.automaton!.heldCount : 0;
  }

  get held(): Int32Array {
    return this.automaton!.held;
  }

  reset(): void {
    this.#scanned = -1;
    this.automaton?.stamp.fill(-1);
  }

  #scan(view: EventView): void {
    const { generation } = view;
    if (this.#scanned === generation) return;
    this.#scanned = generation;
    const automaton = this.automaton!;
    automaton.heldCount = 0;
    if (this.field === KEYWORD_FIELD) {
      // Keywords: each value scanned from the start state, which no needle spans across.
      let present = false;
      const { fields } = view.event;
      for (const field in fields) {
        const raw = fields[field];
        const value = asText(raw);
        if (value === undefined) continue;
        present = true;
        // A number's or a boolean's text holds no needle made of other characters: not worth a scan.
        if (typeof raw === 'number' || typeof raw === 'bigint' ? !automaton.numbersMayMatch : typeof raw === 'boolean' && !automaton.booleansMayMatch) continue;
        scan(automaton, value, generation);
      }
      this.#present = present;
      return;
    }
    const value = view.text(this.field);
    this.#present = value !== undefined;
    if (value !== undefined) scan(automaton, value, generation);
  }
}

export class LiteralIndex {
  readonly #pending = new Map<string, Pending>();
  readonly #slots = new Map<string, FieldSlot>();
  #finalized = false;

  /** Registers a test; the same literal and kind on a field share one. */
  register(field: string, kind: LiteralKind, needle: string): { slot: FieldSlot; test: number } {
    if (this.#finalized) throw new Error('literal index already built');
    let pending = this.#pending.get(field);
    if (!pending) {
      this.#pending.set(field, (pending = { needles: new Map(), testsOf: [], tests: new Map() }));
      this.#slots.set(field, new FieldSlot(field));
    }
    const slot = this.#slots.get(field)!;
    const key = `${kind}\0${needle}`;
    const existing = pending.tests.get(key);
    if (existing !== undefined) return { slot, test: existing };
    const test = pending.tests.size;
    pending.tests.set(key, test);
    let id = pending.needles.get(needle);
    if (id === undefined) {
      id = pending.needles.size;
      pending.needles.set(needle, id);
      pending.testsOf.push([]);
    }
    pending.testsOf[id]!.push({ test, kind });
    return { slot, test };
  }

  /** Builds the automata; called once, when the engine is made from the loaded rules. */
  finalize(): void {
    if (this.#finalized) return;
    this.#finalized = true;
    allIndexes.add(new WeakRef(this));
    for (const [field, pending] of this.#pending) this.#slots.get(field)!.automaton = build(pending);
    this.#pending.clear();
  }

  resetStamps(): void {
    for (const slot of this.#slots.values()) slot.reset();
  }

  /** Size of each field's automaton, for benchmarks and health. */
  stats(): Array<{ field: string; needles: number; states: number; classes: number; tests: number }> {
    return [...this.#slots.values()].filter((slot) => slot.automaton).map(({ field, automaton: a }) => ({
      field, needles: a!.needles.length, states: a!.hasOut.length, classes: a!.classes, tests: a!.stamp.length,
    }));
  }
}

function build(pending: Pending): FieldAutomaton {
  const needles = [...pending.needles.keys()];
  // Alphabet compression: only characters some needle contains need columns in the table.
  const classIds = new Map<number, number>();
  for (const needle of needles) {
    for (let i = 0; i < needle.length; i++) {
      const c = needle.charCodeAt(i);
      if (!classIds.has(c)) classIds.set(c, classIds.size + 1);
    }
  }
  const classes = classIds.size + 1;
  const classOf = new Uint16Array(65_536);
  for (const [c, id] of classIds) classOf[c] = id;
  // Case folding happens here, not on the text: an upper-case letter falls in its lower case's class,
  // so values are scanned as they are, with no lowered copy made per event.
  for (const [c, id] of classIds) {
    const upper = String.fromCharCode(c).toUpperCase();
    if (upper.length === 1 && upper.charCodeAt(0) !== c && upper.toLowerCase() === String.fromCharCode(c)) classOf[upper.charCodeAt(0)] = id;
  }

  const goto: Array<Map<number, number>> = [new Map()];
  const outById: number[][] = [[]];
  for (const [id, needle] of needles.entries()) {
    let state = 0;
    for (let i = 0; i < needle.length; i++) {
      const k = classOf[needle.charCodeAt(i)]!;
      let next = goto[state]!.get(k);
      if (next === undefined) {
        next = goto.length;
        goto.push(new Map());
        outById.push([]);
        goto[state]!.set(k, next);
      }
      state = next;
    }
    outById[state]!.push(id);
  }
  // Breadth first, so a state's failure state is complete before the state: the DFA row of a state
  // is its own edges over its failure state's row.
  if (goto.length * classes >= 2 ** 31) throw new Error(`literal automaton too large: ${goto.length} states × ${classes} classes`);
  const fail = new Int32Array(goto.length);
  const byId = new Int32Array(goto.length * classes);
  for (const [k, next] of goto[0]!) byId[k] = next;
  const queue = [...goto[0]!.values()];
  for (let head = 0; head < queue.length; head++) {
    const state = queue[head]!;
    const f = fail[state]!;
    if (outById[f]!.length > 0) outById[state] = [...outById[state]!, ...outById[f]!];
    for (let k = 0; k < classes; k++) byId[state * classes + k] = byId[f * classes + k]!;
    for (const [k, next] of goto[state]!) {
      fail[next] = byId[f * classes + k]!;
      byId[state * classes + k] = next;
      queue.push(next);
    }
  }
  // States renumbered breadth first: the shallow states, where a scan spends nearly all its time, then
  // share a few cache lines and pages instead of being strewn across the table in needle order.
  const states = goto.length;
  const rank = new Int32Array(states);
  queue.forEach((state, i) => (rank[state] = i + 1));
  const delta = new Int32Array(states * classes);
  const out: number[][] = Array.from({ length: states }, () => []);
  for (let state = 0; state < states; state++) {
    const row = rank[state]! * classes;
    for (let k = 0; k < classes; k++) delta[row + k] = rank[byId[state * classes + k]!]!;
    out[rank[state]!] = outById[state]!;
  }
  const hasOut = new Uint8Array(states);
  for (let state = 0; state < states; state++) hasOut[state] = out[state]!.length > 0 ? 1 : 0;
  // Entries become row offsets (state × classes), so the scan multiplies nothing, and a state where
  // needles end is stored complemented (negative), so the scan tests a sign instead of loading a flag.
  for (let i = 0; i < delta.length; i++) {
    const next = delta[i]!;
    delta[i] = hasOut[next] === 1 ? ~(next * classes) : next * classes;
  }
  // Flat typed arrays, so marking a found needle's tests reads no objects.
  const testsFrom = new Int32Array(needles.length + 1);
  for (let n = 0; n < needles.length; n++) testsFrom[n + 1] = testsFrom[n]! + pending.testsOf[n]!.length;
  const count = testsFrom[needles.length]!;
  const tests = new Int32Array(count);
  const kinds = new Uint8Array(count);
  pending.testsOf.forEach((list, n) => list.forEach(({ test, kind }, k) => {
    tests[testsFrom[n]! + k] = test;
    kinds[testsFrom[n]! + k] = KIND_CODES[kind];
  }));
  return {
    classOf, classes, delta, out, hasOut, needles,
    numbersMayMatch: needles.some((n) => [...n].every((c) => NUMBER_TEXT_CHARS.has(c))),
    booleansMayMatch: needles.some((n) => 'true'.includes(n) || 'false'.includes(n)), needleLength: Int32Array.from(needles, (n) => n.length), testsFrom, tests, kinds,
    stamp: new Int32Array(count).fill(-1), held: new Int32Array(count), heldCount: 0,
  };
}

/** Every character a number's text can hold (String of any number or bigint), lowered as needles are. */
// Digits, signs, point and exponent, and the letters of Infinity and NaN.
const NUMBER_TEXT_CHARS = new Set('0123456789-+.einfinitynan');

const CONTAINS = 0;
const PREFIX = 1;
const SUFFIX = 2;
const EQ = 3;
const KIND_CODES: Record<LiteralKind, number> = { contains: CONTAINS, prefix: PREFIX, suffix: SUFFIX, eq: EQ };

function scan(automaton: FieldAutomaton, value: string, generation: number): void {
  const { classOf, classes, delta, out, hasOut } = automaton;
  const last = value.length - 1;
  let row = 0;
  // The empty needle (an `eq ''`) matches without a character.
  if (hasOut[0] === 1) for (const id of out[0]!) mark(automaton, id, -1, last, generation);
  for (let i = 0; i <= last; i++) {
    const next = delta[row + classOf[value.charCodeAt(i)]!]!;
    if (next >= 0) {
      row = next;
      continue;
    }
    row = ~next;
    const found = out[(row / classes) | 0]!;
    for (let k = 0; k < found.length; k++) mark(automaton, found[k]!, i, last, generation);
  }
}

/** Needle `id` ends at `end` of a value whose last index is `last`: stamp the tests it satisfies. */
function mark(automaton: FieldAutomaton, id: number, end: number, last: number, generation: number): void {
  const { stamp, held, tests, kinds } = automaton;
  const atStart = end + 1 === automaton.needleLength[id];
  const atEnd = end === last;
  const to = automaton.testsFrom[id + 1]!;
  for (let k = automaton.testsFrom[id]!; k < to; k++) {
    const test = tests[k]!;
    if (stamp[test] === generation) continue;
    const kind = kinds[k]!;
    if (kind === CONTAINS || (kind === PREFIX && atStart) || (kind === SUFFIX && atEnd) || (kind === EQ && atStart && atEnd)) {
      stamp[test] = generation;
      held[automaton.heldCount++] = test;
    }
  }
}
