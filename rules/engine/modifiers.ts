// Field items: `Field|mod|mod: value(s)` compiled into one matcher (sigma-semantics.md §2–§3). Every
// check pySigma makes at load time is made here, so a bad rule fails when loaded, not when matched.
import ipaddr from 'ipaddr.js';
import { RE2JS } from 're2js';
import { RuleError, RuleErrorCode } from './errors.ts';
import type { FieldSlot, LiteralIndex } from './literals.ts';
import {
  compilePattern, hasWildcards, literalOf, literalPattern, mapLiterals, parseSigmaString, simpleLiteral, wrap, type Pattern, type TextTest,
} from './pattern.ts';
import { regexNeedles } from './regex-literals.ts';
import { KEYWORD_FIELD, type EventView } from './view.ts';

/** A literal test that must hold for a matcher to match: what lets the engine skip a rule unheard. */
export interface Need {
  slot: FieldSlot;
  test: number;
  /** How often it may hold, as the prefilter guesses: shorter needles hold more often. */
  weight: number;
}

/**
 * `needs`, when present, is a necessary condition: the matcher can only match an event for which at
 * least one of these literal tests holds. Matchers that cannot say (negations, regexes, numbers) have none.
 */
export type Matcher = ((view: EventView) => boolean) & { needs?: readonly Need[] };

function withNeeds(matcher: (view: EventView) => boolean, needs: readonly Need[] | undefined): Matcher {
  if (needs) (matcher as Matcher).needs = needs;
  return matcher;
}

const ENCODINGS = new Set(['wide', 'utf16le', 'utf16be', 'utf16']);
const DATE_PARTS = new Set(['minute', 'hour', 'day', 'week', 'month', 'year']);
const NUMERIC = new Set(['gt', 'gte', 'lt', 'lte']);
const KNOWN = new Set([
  'contains', 'startswith', 'endswith', 'all', 're', 'i', 'm', 's', 'cased', 'exists', 'cidr', 'base64', 'base64offset',
  'windash', 'neq', 'fieldref', 'expand', ...ENCODINGS, ...DATE_PARTS, ...NUMERIC,
]);
/** Dashes `windash` tries for each `-` or `/` that starts a flag. */
const WINDASHES = ['-', '/', '\u2013', '\u2014', '\u2015'];
/** A value whose windash variants would pass this many is refused rather than expanded. */
const MAX_WINDASH_VARIANTS = 625;

export type ScalarValue = string | number | boolean | null;

export interface FieldItem {
  /** Undefined for a keyword item (`'|contains': …`, or a plain list of keywords). */
  field: string | undefined;
  modifiers: string[];
  values: ScalarValue[];
}

/** Splits `Field|mod|mod` into the field and its modifiers. */
export function parseKey(key: string): { field: string | undefined; modifiers: string[] } {
  const [field, ...modifiers] = key.split('|');
  return { field: field ? field : undefined, modifiers };
}

/** What compiling shares across the rules of one load: the literal index their tests go into. */
export interface CompileContext {
  literals?: LiteralIndex;
}

export function compileItem({ field, modifiers, values }: FieldItem, context: CompileContext = {}): Matcher {
  for (const modifier of modifiers) {
    if (!KNOWN.has(modifier)) throw new RuleError(RuleErrorCode.BAD_MODIFIER, `unknown modifier '${modifier}'${field ? ` on ${field}` : ''}`);
  }
  const has = (name: string) => modifiers.includes(name);
  if ((has('re') && modifiers[0] !== 're') || (has('cidr') && modifiers[0] !== 'cidr')) {
    throw new RuleError(RuleErrorCode.MODIFIER_ORDER, `'${has('re') ? 're' : 'cidr'}' must be the first modifier, got '${modifiers.join('|')}'`);
  }
  if (has('exists') && modifiers.length > 1) throw new RuleError(RuleErrorCode.MODIFIER_ORDER, `'exists' must be the only modifier, got '${modifiers.join('|')}'`);
  for (const flag of ['i', 'm', 's']) {
    if (has(flag) && !has('re')) throw new RuleError(RuleErrorCode.MODIFIER_ORDER, `'${flag}' is a regex flag and needs 're'`);
  }
  if (values.length > 1 && values.includes(null)) throw new RuleError(RuleErrorCode.BAD_VALUE, `null inside a value list${field ? ` of ${field}` : ''}`);

  if (has('exists')) {
    if (field === undefined) throw new RuleError(RuleErrorCode.BAD_VALUE, "'exists' needs a field");
    const wanted = values[0] === true || values[0] === 'true';
    return (view) => view.has(field) === wanted;
  }
  if (values.length === 0 || (values.length === 1 && values[0] === null)) {
    if (field === undefined) throw new RuleError(RuleErrorCode.BAD_VALUE, 'a keyword cannot be null');
    return (view) => !view.has(field);
  }

  const matchers = values.map((value) => compileValue(field, modifiers, value as Exclude<ScalarValue, null>, context));
  const combined = has('all') ? every(matchers) : some(matchers);
  return has('neq') ? (view) => !combined(view) : combined;
}

function compileValue(field: string | undefined, modifiers: string[], value: string | number | boolean, context: CompileContext): Matcher {
  const has = (name: string) => modifiers.includes(name);
  if (modifiers.some((m) => NUMERIC.has(m))) return numericMatcher(field, modifiers, value);
  if (modifiers.some((m) => DATE_PARTS.has(m))) return datePartMatcher(field, modifiers, value);
  if (has('re')) return regexMatcher(field, modifiers, value, context.literals);
  if (has('cidr')) return cidrMatcher(field, value);
  if (has('fieldref')) return fieldrefMatcher(field, modifiers, value);

  let patterns = [typeof value === 'string' ? parseSigmaString(value) : literalPattern(String(value))];
  if (has('expand') && patterns.some((p) => /%[^%\s]+%/.test(p.parts.filter((x) => typeof x === 'string').join('')))) {
    throw new RuleError(RuleErrorCode.UNRESOLVED_PLACEHOLDER, `placeholder in '${String(value)}' under 'expand' has no definition`);
  }
  let bytes = false;
  for (const modifier of modifiers) {
    switch (modifier) {
      case 'contains':
        patterns = patterns.map((p) => wrap(p, true, true));
        break;
      case 'startswith':
        patterns = patterns.map((p) => wrap(p, false, true));
        break;
      case 'endswith':
        patterns = patterns.map((p) => wrap(p, true, false));
        break;
      case 'wide':
      case 'utf16le':
      case 'utf16be':
      case 'utf16':
        patterns = patterns.map((p) => mapLiterals(p, (text) => utf16(text, modifier)));
        if (modifier === 'utf16') patterns = patterns.map((p) => ({ parts: ['\u00ff\u00fe', ...p.parts] }));
        bytes = true;
        break;
      case 'base64':
      case 'base64offset': {
        const literals = patterns.map((p) => {
          const text = literalOf(p);
          if (text === undefined) throw new RuleError(RuleErrorCode.BAD_VALUE, `wildcards under '${modifier}' in '${String(value)}'`);
          return Buffer.from(text, bytes ? 'latin1' : 'utf8');
        });
        patterns = literals.flatMap((raw) => (modifier === 'base64' ? [raw.toString('base64')] : base64Offsets(raw)).map(literalPattern));
        bytes = false;
        break;
      }
      case 'windash':
        patterns = patterns.flatMap(windashVariants);
        break;
      default:
        break;
    }
  }
  // A keyword is searched inside every field's value (`*value*`) unless a modifier places it.
  if (field === undefined && !has('contains') && !has('startswith') && !has('endswith')) patterns = patterns.map((p) => wrap(p, true, true));
  const caseSensitive = has('cased');
  // Simple literal tests go into the literal index; the rest are tested one by one. A keyword is a
  // `contains` over every field's value, which the index scans one after another.
  const index = caseSensitive ? undefined : context.literals;
  const target = field ?? KEYWORD_FIELD;
  let slot: FieldSlot | undefined;
  const ids: number[] = [];
  const weights: number[] = [];
  if (index) {
    const rest: Pattern[] = [];
    for (const pattern of patterns) {
      const literal = simpleLiteral(pattern);
      const indexable = literal && (field !== undefined || literal.kind === 'contains') && foldsSimply(literal.needle);
      if (!indexable) {
        rest.push(pattern);
        continue;
      }
      const registered = index.register(target, literal.kind, literal.needle.toLowerCase());
      slot = registered.slot;
      ids.push(registered.test);
      weights.push(needWeight(literal.needle, literal.kind));
    }
    patterns = rest;
  }
  const indexed: Matcher | undefined = slot === undefined ? undefined : indexedMatcher(slot, ids, weights);
  if (indexed && patterns.length === 0) return indexed;
  // A wildcard pattern's literal runs must all occur: each, as a `contains` in the index, guards it,
  // so most events never run the pattern itself.
  const guarded = patterns.map((pattern) => {
    const test = compilePattern(pattern, caseSensitive);
    const plain = directMatcher(field, caseSensitive, test);
    if (!index) return plain;
    const runs = pattern.parts.filter((p): p is string => typeof p === 'string' && p.length >= 3 && foldsSimply(p));
    if (runs.length === 0) return plain;
    const guards = runs.map((run) => {
      const guard = index.register(target, 'contains', run.toLowerCase());
      return indexedMatcher(guard.slot, [guard.test], [needWeight(run, 'contains')]);
    });
    return every([...guards, plain]);
  });
  const direct = some(guarded);
  return indexed ? some([indexed, direct]) : direct;
}

/**
 * The index folds case one character at a time; a needle whose lower case is not that (a character
 * whose case mapping changes the length, like U+0130) is tested the slow way instead.
 */
function foldsSimply(needle: string): boolean {
  const lower = needle.toLowerCase();
  if (lower.length !== needle.length) return false;
  for (let i = 0; i < lower.length; i++) {
    const c = lower[i]!;
    if (c.toUpperCase().length !== 1 || c.toUpperCase().toLowerCase() !== c) return false;
  }
  return true;
}

/** A guess at how often a literal test holds: an exact value less often than a fragment, long less than short. */
function needWeight(needle: string, kind: 'eq' | 'prefix' | 'suffix' | 'contains'): number {
  return (kind === 'eq' ? 0.5 : 1) / Math.max(1, needle.length);
}

function indexedMatcher(slot: FieldSlot, ids: number[], weights: number[]): Matcher {
  const needs = ids.map((test, i) => ({ slot, test, weight: weights[i]! }));
  if (ids.length === 1) {
    const id = ids[0]!;
    return withNeeds((view) => slot.holds(view, id), needs);
  }
  return withNeeds((view) => slot.anyHolds(view, ids), needs);
}

function directMatcher(field: string | undefined, caseSensitive: boolean, test: TextTest): Matcher {
  if (field === undefined) {
    return caseSensitive ? (view) => view.allText().some(test) : (view) => view.allLower().some(test);
  }
  return caseSensitive
    ? (view) => {
      const text = view.text(field);
      return text !== undefined && test(text);
    }
    : (view) => {
      const text = view.lower(field);
      return text !== undefined && test(text);
    };
}

function utf16(text: string, encoding: string): string {
  const le = Buffer.from(text, 'utf16le');
  if (encoding === 'utf16be') le.swap16();
  return le.toString('latin1');
}

/** pySigma's base64offset: the value at byte offset 0, 1 and 2 of a longer base64 text. */
function base64Offsets(raw: Buffer): string[] {
  const startOffsets = [0, 2, 3];
  const endOffsets = [0, -3, -2];
  const variants: string[] = [];
  for (let i = 0; i < 3; i++) {
    const encoded = Buffer.concat([Buffer.alloc(i, ' '), raw]).toString('base64');
    const end = endOffsets[(raw.length + i) % 3]!;
    variants.push(encoded.slice(startOffsets[i], end === 0 ? undefined : end));
  }
  return variants;
}

/** Each `-` or `/` that starts a flag (`\B[-/]\b`) becomes every dash Windows tools accept. */
function windashVariants(pattern: Pattern): Pattern[] {
  let variants: Pattern[] = [{ parts: [] }];
  for (const part of pattern.parts) {
    const options = typeof part === 'string' ? dashOptions(part) : [part];
    if (variants.length * options.length > MAX_WINDASH_VARIANTS) {
      throw new RuleError(RuleErrorCode.BAD_VALUE, `'windash' would make more than ${MAX_WINDASH_VARIANTS} variants`);
    }
    variants = variants.flatMap((v) => options.map((option) => ({ parts: [...v.parts, option] })));
  }
  return variants;
}

function dashOptions(text: string): string[] {
  const positions: number[] = [];
  const re = /\B[-/]\b/g;
  let match: RegExpExecArray | null;
  while ((match = re.exec(text))) positions.push(match.index);
  let options = [text];
  for (const at of positions) {
    options = options.flatMap((option) => WINDASHES.map((dash) => option.slice(0, at) + dash + option.slice(at + 1)));
    if (options.length > MAX_WINDASH_VARIANTS) throw new RuleError(RuleErrorCode.BAD_VALUE, `'windash' would make more than ${MAX_WINDASH_VARIANTS} variants`);
  }
  return options;
}

function needField(field: string | undefined, modifier: string): string {
  if (field === undefined) throw new RuleError(RuleErrorCode.BAD_VALUE, `'${modifier}' needs a field`);
  return field;
}

function numericMatcher(field: string | undefined, modifiers: string[], value: string | number | boolean): Matcher {
  const op = modifiers.find((m) => NUMERIC.has(m))!;
  const name = needField(field, op);
  if (typeof value !== 'number') throw new RuleError(RuleErrorCode.BAD_VALUE, `'${op}' needs a number, got ${JSON.stringify(value)}`);
  const compare: (n: number) => boolean = op === 'gt' ? (n) => n > value : op === 'gte' ? (n) => n >= value : op === 'lt' ? (n) => n < value : (n) => n <= value;
  return (view) => {
    const text = view.text(name);
    if (text === undefined || text.trim() === '') return false;
    const n = Number(text);
    return !Number.isNaN(n) && compare(n);
  };
}

function datePartMatcher(field: string | undefined, modifiers: string[], value: string | number | boolean): Matcher {
  const part = modifiers.find((m) => DATE_PARTS.has(m))!;
  const name = needField(field, part);
  if (typeof value !== 'number') throw new RuleError(RuleErrorCode.BAD_VALUE, `'${part}' needs a number, got ${JSON.stringify(value)}`);
  return (view) => {
    const text = view.text(name);
    if (text === undefined) return false;
    const date = new Date(text);
    if (Number.isNaN(date.getTime())) return false;
    return datePart(date, part) === value;
  };
}

function datePart(date: Date, part: string): number {
  switch (part) {
    case 'minute': return date.getUTCMinutes();
    case 'hour': return date.getUTCHours();
    case 'day': return date.getUTCDate();
    case 'month': return date.getUTCMonth() + 1;
    case 'year': return date.getUTCFullYear();
    default: {
      // ISO 8601 week number.
      const d = new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate()));
      const weekday = d.getUTCDay() || 7;
      d.setUTCDate(d.getUTCDate() + 4 - weekday);
      const yearStart = Date.UTC(d.getUTCFullYear(), 0, 1);
      return Math.ceil(((d.getTime() - yearStart) / 86_400_000 + 1) / 7);
    }
  }
}

/**
 * `re`: RE2 semantics through re2js, which matches in linear time, so no event field can make a rule's
 * regex backtrack (ReDoS). RE2 has no look-around or back-references; rules using them are refused.
 */
function regexMatcher(field: string | undefined, modifiers: string[], value: string | number | boolean, index: LiteralIndex | undefined): Matcher {
  if (typeof value !== 'string') throw new RuleError(RuleErrorCode.BAD_VALUE, `'re' needs a string, got ${JSON.stringify(value)}`);
  let flags = 0;
  if (modifiers.includes('i')) flags |= RE2JS.CASE_INSENSITIVE;
  if (modifiers.includes('m')) flags |= RE2JS.MULTILINE;
  if (modifiers.includes('s')) flags |= RE2JS.DOTALL;
  let re: RE2JS;
  try {
    re = RE2JS.compile(value, flags);
  } catch (error) {
    throw new RuleError(RuleErrorCode.BAD_REGEX, `regex '${value}' does not compile under RE2: ${(error as Error).message}`);
  }
  const test = (text: string) => re.test(text);
  const plain: Matcher = field === undefined
    ? (view) => view.allText().some(test)
    : (view) => {
      const text = view.text(field);
      return text !== undefined && test(text);
    };
  // Guarded by the literals every match contains, so most events never run the regex.
  const needles = index ? regexNeedles(value) : undefined;
  if (!index || !needles?.every(foldsSimply)) return plain;
  const target = field ?? KEYWORD_FIELD;
  const guards = needles.map((needle) => index.register(target, 'contains', needle));
  return every([indexedMatcher(guards[0]!.slot, guards.map((g) => g.test), needles.map((n) => needWeight(n, 'contains'))), plain]);
}

function cidrMatcher(field: string | undefined, value: string | number | boolean): Matcher {
  const name = needField(field, 'cidr');
  let range: [ipaddr.IPv4 | ipaddr.IPv6, number];
  try {
    range = ipaddr.parseCIDR(String(value));
  } catch {
    throw new RuleError(RuleErrorCode.BAD_CIDR, `'${String(value)}' is not a CIDR network`);
  }
  const [address, bits] = range;
  const network = address.kind() === 'ipv4' ? ipaddr.IPv4.networkAddressFromCIDR(String(value)) : ipaddr.IPv6.networkAddressFromCIDR(String(value));
  if (network.toString() !== address.toString()) {
    throw new RuleError(RuleErrorCode.BAD_CIDR, `'${String(value)}' has host bits set; the network is ${network.toString()}/${bits}`);
  }
  return (view) => {
    const text = view.text(name);
    if (text === undefined || !ipaddr.isValid(text)) return false;
    let ip = ipaddr.parse(text);
    if (ip.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress()) ip = (ip as ipaddr.IPv6).toIPv4Address();
    return ip.kind() === address.kind() && ip.match(range);
  };
}

function fieldrefMatcher(field: string | undefined, modifiers: string[], value: string | number | boolean): Matcher {
  const name = needField(field, 'fieldref');
  const other = String(value);
  if (hasWildcards(parseSigmaString(other))) throw new RuleError(RuleErrorCode.BAD_VALUE, `wildcards under 'fieldref' in '${other}'`);
  const caseSensitive = modifiers.includes('cased');
  const read = (view: EventView, f: string) => (caseSensitive ? view.text(f) : view.lower(f));
  const compare = modifiers.includes('contains') ? (a: string, b: string) => a.includes(b)
    : modifiers.includes('startswith') ? (a: string, b: string) => a.startsWith(b)
      : modifiers.includes('endswith') ? (a: string, b: string) => a.endsWith(b)
        : (a: string, b: string) => a === b;
  return (view) => {
    const a = read(view, name);
    const b = read(view, other);
    return a !== undefined && b !== undefined && compare(a, b);
  };
}

/** All must match; any one child's needs are necessary for the whole, so the smallest set is kept. */
export function every(matchers: Matcher[]): Matcher {
  if (matchers.length === 1) return matchers[0]!;
  let needs: readonly Need[] | undefined;
  for (const m of matchers) if (m.needs && (!needs || weightOf(m.needs) < weightOf(needs))) needs = m.needs;
  return withNeeds((view) => {
    for (const m of matchers) if (!m(view)) return false;
    return true;
  }, needs);
}

function weightOf(needs: readonly Need[]): number {
  let sum = 0;
  for (const need of needs) sum += need.weight;
  return sum;
}

/** One must match; the needs are the union of the children's, if every child has some. */
export function some(matchers: Matcher[]): Matcher {
  if (matchers.length === 1) return matchers[0]!;
  const needs = matchers.every((m) => m.needs) ? matchers.flatMap((m) => m.needs!) : undefined;
  return withNeeds((view) => {
    for (const m of matchers) if (m(view)) return true;
    return false;
  }, needs);
}
