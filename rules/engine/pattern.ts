// Sigma string values: the wildcard and escape rules of sigma-semantics.md §2, and matchers compiled
// from them. Matching never backtracks beyond one star at a time, so an attacker-controlled field
// cannot make a wildcard pattern slow (worst case: length of value × length of pattern).

export const STAR = 0;
export const ONE = 1;
/** A literal run of text, or `*` (any run, possibly empty), or `?` (exactly one character). */
export type Part = string | typeof STAR | typeof ONE;

export interface Pattern {
  parts: Part[];
}

/**
 * Reads a rule value: `*` and `?` are wildcards; `\*`, `\?` are literal; `\\` is one backslash; a
 * backslash before anything else (or at the end) stays literal.
 */
export function parseSigmaString(value: string): Pattern {
  const parts: Part[] = [];
  let literal = '';
  const flush = () => {
    if (literal) parts.push(literal);
    literal = '';
  };
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c === '\\') {
      const next = value[i + 1];
      if (next === '*' || next === '?' || next === '\\') {
        literal += next;
        i++;
      } else {
        literal += '\\';
      }
    } else if (c === '*') {
      flush();
      if (parts.at(-1) !== STAR) parts.push(STAR);
    } else if (c === '?') {
      flush();
      parts.push(ONE);
    } else {
      literal += c;
    }
  }
  flush();
  return { parts };
}

export function literalPattern(text: string): Pattern {
  return { parts: text ? [text] : [] };
}

export function hasWildcards(pattern: Pattern): boolean {
  return pattern.parts.some((part) => typeof part !== 'string');
}

/** The text of a pattern without wildcards; undefined if it has any. */
export function literalOf(pattern: Pattern): string | undefined {
  return hasWildcards(pattern) ? undefined : pattern.parts.join('');
}

export function wrap(pattern: Pattern, before: boolean, after: boolean): Pattern {
  const parts = [...pattern.parts];
  if (before && parts[0] !== STAR) parts.unshift(STAR);
  if (after && parts.at(-1) !== STAR) parts.push(STAR);
  return { parts };
}

/** Maps each literal run (wildcards stay). */
export function mapLiterals(pattern: Pattern, map: (text: string) => string): Pattern {
  return { parts: pattern.parts.map((part) => (typeof part === 'string' ? map(part) : part)) };
}

export type TextTest = (value: string) => boolean;

/** A pattern that is one literal tested in one of the four simple ways, for the literal index. */
export function simpleLiteral(pattern: Pattern): { kind: 'eq' | 'prefix' | 'suffix' | 'contains'; needle: string } | undefined {
  const [a, b, c] = pattern.parts;
  switch (pattern.parts.length) {
    case 0: return { kind: 'eq', needle: '' };
    case 1: return typeof a === 'string' ? { kind: 'eq', needle: a } : undefined;
    case 2:
      if (typeof a === 'string' && b === STAR) return { kind: 'prefix', needle: a };
      if (a === STAR && typeof b === 'string') return { kind: 'suffix', needle: b };
      return undefined;
    case 3: return a === STAR && typeof b === 'string' && c === STAR ? { kind: 'contains', needle: b } : undefined;
    default: return undefined;
  }
}

/**
 * A test of a whole value against the pattern. Case-insensitive tests expect the value already in
 * lower case (the event view lowers each field once).
 */
export function compilePattern(pattern: Pattern, caseSensitive: boolean): TextTest {
  const parts = caseSensitive ? pattern.parts : mapLiterals(pattern, (t) => t.toLowerCase()).parts;
  const [first, second, third] = parts;
  if (parts.length === 0) return (value) => value === '';
  if (parts.length === 1 && typeof first === 'string') return (value) => value === first;
  if (parts.length === 1 && first === STAR) return () => true;
  if (parts.length === 2 && typeof first === 'string' && second === STAR) return (value) => value.startsWith(first);
  if (parts.length === 2 && first === STAR && typeof second === 'string') return (value) => value.endsWith(second);
  if (parts.length === 3 && first === STAR && typeof second === 'string' && third === STAR) return (value) => value.includes(second);
  return globTest(parts);
}

/**
 * General wildcard matching. The pattern is split at its stars into segments (literals and `?`);
 * the first segment is anchored at the start, the last at the end, and each middle one is found at its
 * leftmost place, which is enough because a star can absorb anything between.
 */
function globTest(parts: Part[]): TextTest {
  const segments: Part[][] = [[]];
  for (const part of parts) {
    if (part === STAR) segments.push([]);
    else segments.at(-1)!.push(part);
  }
  const lengths = segments.map(segmentLength);
  const anchoredEnd = parts.at(-1) !== STAR;
  return (value) => {
    if (segments.length === 1) return lengths[0] === value.length && segmentAt(segments[0]!, value, 0);
    const head = segments[0]!;
    if (!segmentAt(head, value, 0)) return false;
    let from = lengths[0]!;
    const last = segments.length - 1;
    for (let i = 1; i < last; i++) {
      const at = findSegment(segments[i]!, lengths[i]!, value, from);
      if (at < 0) return false;
      from = at + lengths[i]!;
    }
    const tail = segments[last]!;
    const tailLength = lengths[last]!;
    if (!anchoredEnd) return true;
    const at = value.length - tailLength;
    return at >= from && segmentAt(tail, value, at);
  };
}

function segmentLength(segment: Part[]): number {
  let length = 0;
  for (const part of segment) length += typeof part === 'string' ? part.length : 1;
  return length;
}

function segmentAt(segment: Part[], value: string, at: number): boolean {
  let pos = at;
  for (const part of segment) {
    if (part === ONE) {
      if (pos >= value.length) return false;
      pos++;
    } else if (typeof part === 'string') {
      if (!value.startsWith(part, pos)) return false;
      pos += part.length;
    }
  }
  return true;
}

function findSegment(segment: Part[], length: number, value: string, from: number): number {
  const first = segment[0];
  if (segment.length === 1 && typeof first === 'string') return value.indexOf(first, from);
  for (let at = from; at + length <= value.length; at++) {
    if (segmentAt(segment, value, at)) return at;
  }
  return -1;
}
