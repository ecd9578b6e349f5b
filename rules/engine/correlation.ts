// Correlation rules (sigma-semantics.md §5): event_count, value_count, temporal and temporal_ordered
// over a sliding window, grouped by fields (with aliases), chainable. State is bounded: a cap on groups
// per correlation (oldest evicted, counted) and on what each group keeps; time comes from the events.
import { RuleError, RuleErrorCode } from './errors.ts';
import { ruleMeta, type RuleMeta } from './compile.ts';

export type CorrelationType = 'event_count' | 'value_count' | 'temporal' | 'temporal_ordered';
type Operator = 'gt' | 'gte' | 'lt' | 'lte' | 'eq' | 'neq';

export interface CorrelationRule extends RuleMeta {
  type: CorrelationType;
  /** The ids or names of the rules (or correlations) it correlates, in order. */
  refs: string[];
  groupBy: string[];
  timespanMs: number;
  operator: Operator;
  threshold: number;
  field?: string;
  /** alias → (rule id or name → field). */
  aliases: Record<string, Record<string, string>>;
  generate: boolean;
}

const UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000, M: 2_592_000_000, y: 31_536_000_000 };
const OPERATORS = new Set<Operator>(['gt', 'gte', 'lt', 'lte', 'eq', 'neq']);

export function parseCorrelation(doc: Record<string, unknown>, source: { file: string; line: number }): CorrelationRule {
  const meta = ruleMeta(doc, source);
  const c = doc['correlation'];
  if (c === null || typeof c !== 'object' || Array.isArray(c)) throw new RuleError(RuleErrorCode.BAD_CORRELATION, "'correlation' must be a mapping");
  const spec = c as Record<string, unknown>;
  const type = spec['type'];
  if (type !== 'event_count' && type !== 'value_count' && type !== 'temporal' && type !== 'temporal_ordered') {
    throw new RuleError(RuleErrorCode.BAD_CORRELATION, `correlation type must be event_count, value_count, temporal or temporal_ordered, got ${JSON.stringify(type)}`);
  }
  const refs = typeof spec['rules'] === 'string' ? [spec['rules']] : spec['rules'];
  if (!Array.isArray(refs) || refs.length === 0 || refs.some((r) => typeof r !== 'string')) throw new RuleError(RuleErrorCode.BAD_CORRELATION, "'rules' must list the ids or names of the rules to correlate");
  const groupByRaw = spec['group-by'] ?? [];
  const groupBy = typeof groupByRaw === 'string' ? [groupByRaw] : groupByRaw;
  if (!Array.isArray(groupBy) || groupBy.some((g) => typeof g !== 'string')) throw new RuleError(RuleErrorCode.BAD_CORRELATION, "'group-by' must be a list of field names");
  const timespan = /^(\d+)([smhdwMy])$/.exec(String(spec['timespan'] ?? ''));
  if (!timespan) throw new RuleError(RuleErrorCode.BAD_CORRELATION, `'timespan' must look like 5m or 1h, got ${JSON.stringify(spec['timespan'])}`);
  const timespanMs = Number(timespan[1]) * UNITS[timespan[2]!]!;
  const temporal = type === 'temporal' || type === 'temporal_ordered';
  let operator: Operator = 'gte';
  let threshold = temporal ? refs.length : Number.NaN;
  const condition = spec['condition'];
  let field: string | undefined;
  if (condition !== undefined) {
    if (condition === null || typeof condition !== 'object' || Array.isArray(condition)) throw new RuleError(RuleErrorCode.BAD_CORRELATION, "'condition' must be a mapping like {gte: 10}");
    const entries = Object.entries(condition as Record<string, unknown>).filter(([k]) => k !== 'field');
    const f = (condition as Record<string, unknown>)['field'];
    if (typeof f === 'string') field = f;
    if (entries.length !== 1) throw new RuleError(RuleErrorCode.BAD_CORRELATION, `'condition' needs exactly one of ${[...OPERATORS].join(', ')}`);
    const [op, value] = entries[0]!;
    if (!OPERATORS.has(op as Operator) || typeof value !== 'number' || !Number.isInteger(value)) throw new RuleError(RuleErrorCode.BAD_CORRELATION, `'condition' needs one of ${[...OPERATORS].join(', ')} with an integer, got ${op}: ${JSON.stringify(value)}`);
    operator = op as Operator;
    threshold = value;
  } else if (!temporal) {
    throw new RuleError(RuleErrorCode.BAD_CORRELATION, `a ${type} correlation needs a 'condition'`);
  }
  if (operator === 'lt' || operator === 'lte') {
    // "Fewer than N in the window" can only be decided when a window closes, which a stream of events
    // cannot see without a clock; refused rather than answered wrong.
    throw new RuleError(RuleErrorCode.BAD_CORRELATION, `'${operator}' conditions need the end of a window to be judged, which this engine does not do`);
  }
  if (type === 'value_count' && !field) throw new RuleError(RuleErrorCode.BAD_CORRELATION, "a value_count correlation needs 'condition.field'");
  const aliases = spec['aliases'] ?? {};
  if (aliases === null || typeof aliases !== 'object' || Array.isArray(aliases)) throw new RuleError(RuleErrorCode.BAD_CORRELATION, "'aliases' must be a mapping");
  const rule: CorrelationRule = {
    ...meta, type, refs: refs as string[], groupBy: groupBy as string[], timespanMs, operator, threshold,
    aliases: aliases as Record<string, Record<string, string>>, generate: spec['generate'] === true,
  };
  if (field) rule.field = field;
  return rule;
}

/** A match fed to a correlation: which referenced rule matched, on which event, when. */
export interface Hit {
  ref: string;
  /** The rule's id and name, either of which a correlation may use to refer to it. */
  keys: string[];
  eventIds: string[];
  timeMs: number;
  fields: Readonly<Record<string, unknown>>;
}

export interface CorrelationCounters {
  groups: number;
  evictedGroups: number;
  expiredGroups: number;
}

interface Group {
  lastMs: number;
  /** event_count: match times; temporal: per ref index, the times it matched. */
  times: number[];
  refTimes: number[][];
  values: Map<string, number>;
  eventIds: string[];
}

const MAX_GROUPS = 10_000;
const MAX_EVENT_IDS = 100;

/** The running state of one correlation. */
export class CorrelationState {
  readonly rule: CorrelationRule;
  readonly counters: CorrelationCounters = { groups: 0, evictedGroups: 0, expiredGroups: 0 };
  readonly #groups = new Map<string, Group>();
  readonly #maxGroups: number;
  #sweptAtMs = 0;

  constructor(rule: CorrelationRule, maxGroups = MAX_GROUPS) {
    this.rule = rule;
    this.#maxGroups = maxGroups;
  }

  /** Feeds one hit; returns the group's event ids when the correlation fires. */
  add(hit: Hit): string[] | undefined {
    const { rule } = this;
    let refIndex = -1;
    for (let r = 0; r < rule.refs.length && refIndex < 0; r++) if (hit.keys.includes(rule.refs[r]!)) refIndex = r;
    if (refIndex < 0) return undefined;
    this.#sweep(hit.timeMs);
    let key = '';
    for (let g = 0; g < rule.groupBy.length; g++) key += (g > 0 ? '\u0000' : '') + groupValue(hit, rule.groupBy[g]!, rule);
    let group = this.#groups.get(key);
    if (group) {
      this.#groups.delete(key);
    } else {
      if (this.#groups.size >= this.#maxGroups) {
        const oldest = this.#groups.keys().next().value!;
        this.#groups.delete(oldest);
        this.counters.evictedGroups++;
      }
      group = { lastMs: hit.timeMs, times: [], refTimes: rule.refs.map(() => []), values: new Map(), eventIds: [] };
    }
    // Re-inserted last: the map's order is least recently used first, for eviction and sweeping.
    this.#groups.set(key, group);
    this.counters.groups = this.#groups.size;
    group.lastMs = Math.max(group.lastMs, hit.timeMs);
    const from = group.lastMs - rule.timespanMs;
    for (const id of hit.eventIds) group.eventIds.push(id);
    if (group.eventIds.length > MAX_EVENT_IDS) group.eventIds.splice(0, group.eventIds.length - MAX_EVENT_IDS);

    let fired = false;
    switch (rule.type) {
      case 'event_count': {
        // In place, without a new array per hit: keep the times inside the window (in any order they
        // came), then only as many as the condition needs.
        const { times } = group;
        times.push(hit.timeMs);
        let kept = 0;
        for (let i = 0; i < times.length; i++) if (times[i]! > from) times[kept++] = times[i]!;
        times.length = kept;
        if (kept > rule.threshold + 1) times.splice(0, kept - rule.threshold - 1);
        fired = compare(group.times.length, rule.operator, rule.threshold);
        break;
      }
      case 'value_count': {
        const value = hit.fields[fieldFor(rule.field!, hit, rule)];
        if (value !== undefined && value !== null) group.values.set(String(value), hit.timeMs);
        for (const [v, t] of group.values) if (t <= from) group.values.delete(v);
        fired = compare(group.values.size, rule.operator, rule.threshold);
        break;
      }
      case 'temporal':
      case 'temporal_ordered': {
        const times = group.refTimes[refIndex]!;
        times.push(hit.timeMs);
        for (const list of group.refTimes) {
          while (list.length > 0 && list[0]! <= from) list.shift();
          if (list.length > 16) list.splice(0, list.length - 16);
        }
        const seen = rule.type === 'temporal' ? group.refTimes.filter((list) => list.length > 0).length : orderedProgress(group.refTimes);
        fired = compare(seen, rule.operator, rule.threshold);
        break;
      }
    }
    if (!fired) return undefined;
    const eventIds = group.eventIds;
    this.#groups.delete(key);
    this.counters.groups = this.#groups.size;
    return eventIds;
  }

  /** Drops groups whose window has passed, at most once per timespan of event time. */
  #sweep(nowMs: number): void {
    if (nowMs - this.#sweptAtMs < this.rule.timespanMs) return;
    this.#sweptAtMs = nowMs;
    for (const [key, group] of this.#groups) {
      if (group.lastMs > nowMs - this.rule.timespanMs) continue;
      this.#groups.delete(key);
      this.counters.expiredGroups++;
    }
    this.counters.groups = this.#groups.size;
  }
}

/**
 * How many of the refs, in order, have matched in sequence ending with the latest match of the last
 * one reached: walking back from the end, each earlier ref must have a match before the later one's.
 */
function orderedProgress(refTimes: number[][]): number {
  let progress = 0;
  let after = Number.NEGATIVE_INFINITY;
  for (const times of refTimes) {
    const next = times.find((t) => t >= after);
    if (next === undefined) break;
    after = next;
    progress++;
  }
  return progress;
}

function compare(value: number, operator: Operator, threshold: number): boolean {
  switch (operator) {
    case 'gt': return value > threshold;
    case 'gte': return value >= threshold;
    case 'eq': return value === threshold;
    case 'neq': return value !== threshold;
    default: return false;
  }
}

/** The field a hit's rule uses for a group-by name, through the correlation's aliases. */
function fieldFor(name: string, hit: Hit, rule: CorrelationRule): string {
  const alias = rule.aliases[name];
  if (!alias) return name;
  for (const key of hit.keys) if (alias[key]) return alias[key];
  return name;
}

function groupValue(hit: Hit, name: string, rule: CorrelationRule): string {
  const value = hit.fields[fieldFor(name, hit, rule)];
  return value === undefined || value === null ? '' : String(value).toLowerCase();
}
