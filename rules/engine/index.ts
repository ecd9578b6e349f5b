// The rules engine: loaded rules indexed by logsource, and evaluate(event) → alerts. Pure: no I/O,
// no logger, no clock; an alert's time is its event's time and its id is derived, not random.
import type { CompiledRule, Level, RuleMeta } from './compile.ts';
import { CorrelationState, type Hit } from './correlation.ts';
import type { LoadResult } from './load.ts';
import { routeKey, routeKeys } from './routes.ts';
import { hash128Words, hex8, hexByte } from './hash.ts';
import { EventView, type RuleEvent } from './view.ts';
import type { FieldSlot } from './literals.ts';

export { loadRules, type LoadResult, type RuleSource } from './load.ts';
export { RuleErrorCode, RuleWarningCode, type RuleProblem } from './errors.ts';
export type { CompiledRule, Level, RuleMeta } from './compile.ts';
export type { CorrelationRule, CorrelationCounters } from './correlation.ts';
export type { RuleEvent } from './view.ts';

export interface Alert {
  id: string;
  time: string;
  rule: { id: string; title: string; level: Level; tags: string[]; author: string };
  eventIds: string[];
  host?: { id: string; name: string };
  sessionId?: string;
  summary: string;
}

export interface EngineEvent extends RuleEvent {
  host?: { id: string; name: string };
}

/**
 * The rules of one route, with the prefilter: a rule whose matcher has needs (literal tests one of
 * which must hold) is evaluated only when the field scan says one does; the others always are.
 */
class Bucket {
  readonly rules: CompiledRule[] = [];
  /** The indexes of the rules with no needs, which every event meets. */
  #needless: number[] = [];
  #always = new Int32Array(0);
  /** slot → test → the rules that need it, while rules are added. */
  #needers = new Map<FieldSlot, Map<number, number[]>>();
  /** The same as dense arrays, built once the bucket is used: slots, and per slot, per test, rules. */
  #slots: FieldSlot[] = [];
  #rulesByTest: Array<Array<number[] | undefined>> = [];
  #dirty = true;
  #candidate = new Int32Array(0);
  #picked = new Int32Array(0);

  add(rule: CompiledRule): void {
    const index = this.rules.push(rule) - 1;
    const needs = rule.match.needs;
    if (!needs) this.#needless.push(index);
    for (const { slot, test } of needs ?? []) {
      let byTest = this.#needers.get(slot);
      if (!byTest) this.#needers.set(slot, (byTest = new Map()));
      let list = byTest.get(test);
      if (!list) byTest.set(test, (list = []));
      if (list.at(-1) !== index) list.push(index);
    }
    this.#dirty = true;
  }

  /** The rules worth evaluating for this event, in the bucket's order, into `into` (reused). */
  candidates(view: EventView, prefilter: boolean, into: CompiledRule[]): CompiledRule[] {
    into.length = 0;
    if (!prefilter) {
      into.push(...this.rules);
      return into;
    }
    if (this.#dirty) this.#build();
    const { generation } = view;
    const { rules } = this;
    const candidate = this.#candidate;
    const picked = this.#picked;
    let count = 0;
    const slots = this.#slots;
    for (let s = 0; s < slots.length; s++) {
      const slot = slots[s]!;
      const held = slot.heldCount(view);
      if (held === 0) continue;
      const tests = slot.held;
      const byTest = this.#rulesByTest[s]!;
      for (let t = 0; t < held; t++) {
        const needers = byTest[tests[t]!];
        if (!needers) continue;
        for (let r = 0; r < needers.length; r++) {
          const index = needers[r]!;
          if (candidate[index] === generation) continue;
          candidate[index] = generation;
          // Insertion keeps the few picked rules in the bucket's order.
          let at = count++;
          while (at > 0 && picked[at - 1]! > index) {
            picked[at] = picked[at - 1]!;
            at--;
          }
          picked[at] = index;
        }
      }
    }
    // Merge with the rules that have no needs, both in the bucket's order.
    const always = this.#always;
    let a = 0;
    let p = 0;
    while (a < always.length || p < count) {
      if (p === count || (a < always.length && always[a]! < picked[p]!)) into.push(rules[always[a++]!]!);
      else into.push(rules[picked[p++]!]!);
    }
    return into;
  }

  #build(): void {
    this.#slots = [...this.#needers.keys()];
    this.#rulesByTest = this.#slots.map((slot) => {
      const dense: Array<number[] | undefined> = [];
      for (const [test, rules] of this.#needers.get(slot)!) dense[test] = rules;
      return dense;
    });
    this.#candidate = new Int32Array(this.rules.length).fill(-1);
    this.#picked = new Int32Array(this.rules.length);
    this.#always = Int32Array.from(this.#needless);
    this.#dirty = false;
  }
}

const NO_ALERTS: readonly Alert[] = Object.freeze([]);

export interface EngineOptions {
  /** Skip rules whose needed literals are absent (default). Off only to check the prefilter itself. */
  prefilter?: boolean;
}

/**
 * Rules are routed by (category, product): an event meets only the rules whose logsource can match
 * it. A rule that names a `service` matches only events of that service; ours carry none.
 */
export class RuleEngine {
  readonly rules: readonly CompiledRule[];
  readonly correlations: readonly CorrelationState[];
  readonly #routes = new Map<string, Bucket>();
  readonly #prefilter: boolean;
  /** Reused for each bucket's candidates: evaluation allocates no list per event. */
  readonly #scratch: CompiledRule[] = [];
  /** Correlations fed by each rule or correlation, by id and by name. */
  readonly #feeds = new Map<string, CorrelationState[]>();
  /** Referenced rules that alert only through their correlations (`generate: false`). */
  readonly #silenced = new Set<string>();
  readonly #fedBy = new Map<string, { states: CorrelationState[]; keys: string[] }>();
  readonly #plans = new Map<string, Map<string, Bucket[]>>();

  constructor(loaded: Pick<LoadResult, 'rules'> & Partial<Pick<LoadResult, 'correlations' | 'literals'>>, { prefilter = true }: EngineOptions = {}) {
    this.rules = loaded.rules;
    this.#prefilter = prefilter;
    for (const index of loaded.literals?.values() ?? []) index.finalize();
    for (const rule of loaded.rules) {
      if (rule.logsource.service !== undefined) continue;
      const key = routeKey(rule.logsource.category, rule.logsource.product);
      let bucket = this.#routes.get(key);
      if (!bucket) this.#routes.set(key, (bucket = new Bucket()));
      bucket.add(rule);
    }
    this.correlations = (loaded.correlations ?? []).map((rule) => new CorrelationState(rule));
    const generating = new Set<string>();
    for (const state of this.correlations) {
      for (const ref of state.rule.refs) {
        let feeds = this.#feeds.get(ref);
        if (!feeds) this.#feeds.set(ref, (feeds = []));
        feeds.push(state);
        if (state.rule.generate) generating.add(ref);
      }
    }
    for (const rule of [...loaded.rules, ...(loaded.correlations ?? [])]) {
      const keys = keysOf(rule);
      if (keys.some((k) => this.#feeds.has(k)) && !keys.some((k) => generating.has(k))) this.#silenced.add(rule.id);
    }
  }

  /** The rules an event of this category and product meets. */
  rulesFor(category: string, product: string): CompiledRule[] {
    return routeKeys(category, product).flatMap((key) => this.#routes.get(key)?.rules ?? []);
  }

  /** The alerts this event raises, in rule order; most events raise none, and share one empty list. */
  evaluate(event: EngineEvent): readonly Alert[] {
    let alerts: Alert[] | undefined;
    const view = new EventView(event);
    for (const bucket of this.#plan(event.category, event.product)) {
      for (const rule of bucket.candidates(view, this.#prefilter, this.#scratch)) {
        if (!rule.match(view)) continue;
        alerts ??= [];
        if (!this.#silenced.has(rule.id)) alerts.push(alertFor(rule, event));
        if (this.#feeds.size > 0) this.#correlate(rule, [event.id], event, alerts, 0);
      }
    }
    return alerts ?? NO_ALERTS;
  }

  /** The buckets an event of this category and product meets, found once per pair and kept. */
  #plan(category: string, product: string): Bucket[] {
    let byProduct = this.#plans.get(category);
    if (!byProduct) this.#plans.set(category, (byProduct = new Map()));
    let plan = byProduct.get(product);
    if (!plan) {
      plan = routeKeys(category, product).map((key) => this.#routes.get(key)).filter((b): b is Bucket => b !== undefined);
      // Bounded: an attacker-chosen category names one more plan, but plans are only made for routes
      // that exist, and there are few; past the cap, plans are computed each time instead of kept.
      if (byProduct.size < 64 && this.#plans.size < 256) byProduct.set(product, plan);
    }
    return plan;
  }

  /** Feeds a match to the correlations that reference it; a firing one feeds its own referrers. */
  #correlate(source: RuleMeta, eventIds: string[], event: EngineEvent, alerts: Alert[], depth: number): void {
    const { states, keys } = this.#fed(source);
    if (states.length === 0 || depth > 8) return;
    const hit: Hit = { ref: source.id, keys, eventIds, timeMs: Date.parse(event.time), fields: event.fields };
    if (Number.isNaN(hit.timeMs)) return;
    for (const state of states) {
      const fired = state.add(hit);
      if (!fired) continue;
      if (!this.#silenced.has(state.rule.id)) alerts.push(alertFor(state.rule, event, fired));
      this.#correlate(state.rule, fired, event, alerts, depth + 1);
    }
  }

  /** The correlations a rule (or correlation) feeds, by its id and its name, computed once per rule. */
  #fed(source: RuleMeta): { states: CorrelationState[]; keys: string[] } {
    let fed = this.#fedBy.get(source.id);
    if (!fed) {
      const keys = keysOf(source);
      fed = { states: [...new Set(keys.flatMap((k) => this.#feeds.get(k) ?? []))], keys };
      this.#fedBy.set(source.id, fed);
    }
    return fed;
  }
}

function keysOf(rule: RuleMeta): string[] {
  return rule.name ? [rule.id, rule.name] : [rule.id];
}



const SUMMARY_FIELDS = ['User', 'SourceIp', 'Image', 'CommandLine', 'Device'];
const MAX_SUMMARY_CHARS = 512;

export function alertFor(rule: RuleMeta, event: EngineEvent, eventIds: string[] = [event.id]): Alert {
  let details = '';
  for (const field of SUMMARY_FIELDS) {
    const value = event.fields[field];
    if (value === undefined || value === null || value === '') continue;
    details += `${details ? ' ' : ''}${field}=${String(value)}`;
  }
  const alert: Alert = {
    id: alertId(rule.id, eventIds),
    time: event.time,
    rule: { id: rule.id, title: rule.title, level: rule.level, tags: rule.tags, author: rule.author },
    eventIds,
    summary: `${rule.title}${details ? `: ${details}` : ''}`.slice(0, MAX_SUMMARY_CHARS),
  };
  if (event.host) alert.host = event.host;
  const sessionId = event.fields['SessionId'];
  if (typeof sessionId === 'string') alert.sessionId = sessionId;
  return alert;
}

/**
 * Derived from the rule and the events, so the same match gives the same id (dedup downstream), in the
 * shape of a UUID (version 8). 128 bits of MurmurHash3: the inputs are rule ids and the agent's own
 * event ids (UUIDv7, not chosen by whoever is watched), so accidental collisions are what matters, and
 * at 128 bits they are out of reach; a SHA-256 here cost as much as the rest of building the alert.
 */
function alertId(ruleId: string, eventIds: string[]): string {
  const [h1, h2, h3, h4] = hash128Words(`${ruleId}\0${eventIds.join('\0')}`) as unknown as [number, number, number, number];
  // The 32 hex digits of h1..h4 as a UUID: version 8 in the 13th digit, variant 10 in the 17th.
  return `${hex8(h1)}-${hexByte(h2 >>> 24)}${hexByte(h2 >>> 16)}-8${hexByte(h2 >>> 8).slice(1)}${hexByte(h2)}-${hexByte(((h3 >>> 24) & 0x3f) | 0x80)}${hexByte(h3 >>> 16)}-${hexByte(h3 >>> 8)}${hexByte(h3)}${hex8(h4)}`;
}
