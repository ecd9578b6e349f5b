// The engine's fast path. Most Sigma tests are a literal a field must equal, start with, end with or
// contain. Instead of running each rule's tests one by one, every such literal of every rule is put
// into one Aho–Corasick automaton per field; an event's field is scanned once, and each test becomes a
// lookup. Tests are deduplicated across rules (hundreds of rules ask for `Image|endswith: /bash`).

export type LiteralKind = 'eq' | 'prefix' | 'suffix' | 'contains';

interface FieldAutomaton {
  /** Per state: char code → next state. */
  goto: Array<Map<number, number>>;
  fail: Int32Array;
  /** Per state: the needles that end here (through dictionary links too). */
  out: number[][];
  needles: string[];
  /** Per needle: the tests that use it. */
  testsOf: Array<Array<{ test: number; kind: LiteralKind }>>;
  /** Per test: the event generation in which it last held. */
  stamp: Int32Array;
  /** The event generation whose value this field's stamps describe. */
  scannedGeneration: number;
}

interface Pending {
  needles: Map<string, number>;
  testsOf: Array<Array<{ test: number; kind: LiteralKind }>>;
  tests: Map<string, number>;
}

export class LiteralIndex {
  readonly #pending = new Map<string, Pending>();
  readonly #fields = new Map<string, FieldAutomaton>();
  #finalized = false;
  #generation = 0;

  /** A fresh stamp for one event's evaluation; every engine sharing this index draws from it. */
  nextGeneration(): number {
    this.#generation = (this.#generation + 1) | 0;
    if (this.#generation === 0) {
      for (const automaton of this.#fields.values()) {
        automaton.stamp.fill(-1);
        automaton.scannedGeneration = -1;
      }
      this.#generation = 1;
    }
    return this.#generation;
  }

  /** Registers a test and returns its id within the field (the same literal and kind share one). */
  register(field: string, kind: LiteralKind, needle: string): number {
    if (this.#finalized) throw new Error('literal index already built');
    let pending = this.#pending.get(field);
    if (!pending) this.#pending.set(field, (pending = { needles: new Map(), testsOf: [], tests: new Map() }));
    const key = `${kind}\0${needle}`;
    const existing = pending.tests.get(key);
    if (existing !== undefined) return existing;
    const test = pending.tests.size;
    pending.tests.set(key, test);
    let id = pending.needles.get(needle);
    if (id === undefined) {
      id = pending.needles.size;
      pending.needles.set(needle, id);
      pending.testsOf.push([]);
    }
    pending.testsOf[id]!.push({ test, kind });
    return test;
  }

  /** Builds the automata; called once, when the engine is made from the loaded rules. */
  finalize(): void {
    if (this.#finalized) return;
    this.#finalized = true;
    for (const [field, pending] of this.#pending) this.#fields.set(field, build(pending));
    this.#pending.clear();
  }

  /** Whether test `test` of `field` holds for `value` (lowered), scanning it once per generation. */
  holds(field: string, test: number, value: string, generation: number): boolean {
    const automaton = this.#fields.get(field)!;
    if (automaton.scannedGeneration !== generation) {
      scan(automaton, value, generation);
      automaton.scannedGeneration = generation;
    }
    return automaton.stamp[test] === generation;
  }
}

function build(pending: Pending): FieldAutomaton {
  const goto: Array<Map<number, number>> = [new Map()];
  const out: number[][] = [[]];
  const needles = [...pending.needles.keys()];
  for (const [id, needle] of needles.entries()) {
    let state = 0;
    for (let i = 0; i < needle.length; i++) {
      const c = needle.charCodeAt(i);
      let next = goto[state]!.get(c);
      if (next === undefined) {
        next = goto.length;
        goto.push(new Map());
        out.push([]);
        goto[state]!.set(c, next);
      }
      state = next;
    }
    out[state]!.push(id);
  }
  const fail = new Int32Array(goto.length);
  const queue: number[] = [];
  for (const next of goto[0]!.values()) queue.push(next);
  for (let head = 0; head < queue.length; head++) {
    const state = queue[head]!;
    for (const [c, next] of goto[state]!) {
      queue.push(next);
      let f = fail[state]!;
      while (f > 0 && !goto[f]!.has(c)) f = fail[f]!;
      const target = goto[f]!.get(c);
      fail[next] = target !== undefined && target !== next ? target : 0;
      if (out[fail[next]!]!.length > 0) out[next] = [...out[next]!, ...out[fail[next]!]!];
    }
  }
  let tests = 0;
  for (const list of pending.testsOf) tests += list.length;
  return { goto, fail, out, needles, testsOf: pending.testsOf, stamp: new Int32Array(tests).fill(-1), scannedGeneration: -1 };
}

function scan(automaton: FieldAutomaton, value: string, generation: number): void {
  const { goto, fail, out, needles, testsOf, stamp } = automaton;
  const last = value.length - 1;
  let state = 0;
  // The empty needle (an `eq ''` or a bare `*`-less empty value) matches without a character.
  for (const id of out[0]!) mark(id, -1);
  for (let i = 0; i <= last; i++) {
    const c = value.charCodeAt(i);
    let next = goto[state]!.get(c);
    while (next === undefined && state > 0) {
      state = fail[state]!;
      next = goto[state]!.get(c);
    }
    state = next ?? 0;
    const found = out[state]!;
    for (let k = 0; k < found.length; k++) mark(found[k]!, i);
  }

  function mark(id: number, end: number): void {
    const length = needles[id]!.length;
    const start = end - length + 1;
    for (const { test, kind } of testsOf[id]!) {
      if (stamp[test] === generation) continue;
      if (kind === 'contains' || (kind === 'prefix' && start === 0) || (kind === 'suffix' && end === last) || (kind === 'eq' && start === 0 && end === last)) {
        stamp[test] = generation;
      }
    }
  }
}
