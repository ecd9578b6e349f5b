// The engine's fast path. Most Sigma tests are a literal a field must equal, start with, end with or
// contain, case-insensitively. Instead of running each rule's tests one by one, every such literal of every rule is put
// into one Aho–Corasick automaton per field; an event's field is scanned once, and each test becomes a
// lookup. Tests are deduplicated across rules (hundreds of rules ask for `Image|endswith: /bash`).
import { KEYWORD_FIELD, type EventView } from './view.ts';

export type LiteralKind = 'eq' | 'prefix' | 'suffix' | 'contains';

interface FieldAutomaton {
  /** Character code → character class; class 0 is every character no needle contains. */
  classOf: Uint16Array;
  classes: number;
  /**
   * The full transition function (a DFA): next state = delta[state * classes + class]. One array type
   * for every automaton, so the scan loop stays monomorphic (a mix of typed-array kinds made it ~10× slower).
   */
  delta: Int32Array;
  /** Per state: the needles that end here (through dictionary links too); empty for most. */
  out: number[][];
  hasOut: Uint8Array;
  needles: string[];
  /** Per needle: the tests that use it. */
  testsOf: Array<Array<{ test: number; kind: LiteralKind }>>;
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

  /** The tests that hold for this event (scanning the field if not yet done). */
  heldTests(view: EventView): { tests: Int32Array; count: number } {
    this.#scan(view);
    const automaton = this.automaton!;
    return { tests: automaton.held, count: this.#present ? automaton.heldCount : 0 };
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
      const values = view.allText();
      this.#present = values.length > 0;
      for (const value of values) scan(automaton, value, generation);
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
  const out: number[][] = [[]];
  for (const [id, needle] of needles.entries()) {
    let state = 0;
    for (let i = 0; i < needle.length; i++) {
      const k = classOf[needle.charCodeAt(i)]!;
      let next = goto[state]!.get(k);
      if (next === undefined) {
        next = goto.length;
        goto.push(new Map());
        out.push([]);
        goto[state]!.set(k, next);
      }
      state = next;
    }
    out[state]!.push(id);
  }
  // Breadth first, so a state's failure state is complete before the state: the DFA row of a state
  // is its own edges over its failure state's row.
  const fail = new Int32Array(goto.length);
  const delta = new Int32Array(goto.length * classes);
  for (const [k, next] of goto[0]!) delta[k] = next;
  const queue = [...goto[0]!.values()];
  for (let head = 0; head < queue.length; head++) {
    const state = queue[head]!;
    const f = fail[state]!;
    if (out[f]!.length > 0) out[state] = [...out[state]!, ...out[f]!];
    for (let k = 0; k < classes; k++) delta[state * classes + k] = delta[f * classes + k]!;
    for (const [k, next] of goto[state]!) {
      fail[next] = delta[f * classes + k]!;
      delta[state * classes + k] = next;
      queue.push(next);
    }
  }
  const hasOut = new Uint8Array(goto.length);
  for (let state = 0; state < goto.length; state++) hasOut[state] = out[state]!.length > 0 ? 1 : 0;
  let tests = 0;
  for (const list of pending.testsOf) tests += list.length;
  return { classOf, classes, delta, out, hasOut, needles, testsOf: pending.testsOf, stamp: new Int32Array(tests).fill(-1), held: new Int32Array(tests), heldCount: 0 };
}

function scan(automaton: FieldAutomaton, value: string, generation: number): void {
  const { classOf, classes, delta, out, hasOut } = automaton;
  const last = value.length - 1;
  let state = 0;
  // The empty needle (an `eq ''`) matches without a character.
  for (const id of out[0]!) mark(automaton, id, -1, last, generation);
  for (let i = 0; i <= last; i++) {
    state = delta[state * classes + classOf[value.charCodeAt(i)]!]!;
    if (hasOut[state] === 1) {
      const found = out[state]!;
      for (let k = 0; k < found.length; k++) mark(automaton, found[k]!, i, last, generation);
    }
  }
}

/** Needle `id` ends at `end` of a value whose last index is `last`: stamp the tests it satisfies. */
function mark(automaton: FieldAutomaton, id: number, end: number, last: number, generation: number): void {
  const { stamp, held } = automaton;
  const start = end - automaton.needles[id]!.length + 1;
  for (const { test, kind } of automaton.testsOf[id]!) {
    if (stamp[test] === generation) continue;
    if (kind === 'contains' || (kind === 'prefix' && start === 0) || (kind === 'suffix' && end === last) || (kind === 'eq' && start === 0 && end === last)) {
      stamp[test] = generation;
      held[automaton.heldCount++] = test;
    }
  }
}
