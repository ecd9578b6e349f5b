// Necessary literals of a regular expression: a set of strings one of which occurs in every text the
// regex finds a match in. They let the literal index guard a `re` test as it guards wildcard patterns,
// so most events never run the regex (the technique of Google Code Search's trigram queries and of
// ripgrep's literal extraction, kept to the part of RE2 syntax whose structure is certain here).
//
// Conservative by construction: syntax this parser does not fully understand gives no literals at all,
// and an element it cannot describe only breaks a literal run, so every set returned is necessary. The
// sets are lowered: the index compares without case, which only widens a case-sensitive test.

/** What one part of a regex can match. */
interface Info {
  /** Every string the part can match, when they are few (a literal, a short alternation, a small class). */
  exact?: Set<string>;
  /** A set one of which occurs inside every string the part matches. */
  need?: Set<string>;
}

const MAX_EXACT = 16;
/** Needles shorter than this hold for most texts: a guard made of them saves nothing. */
const MIN_NEEDLE = 2;
/** Escapes of one character class each, which break a literal run. */
const CLASS_ESCAPES = new Set(['s', 'S', 'd', 'D', 'w', 'W']);
/** Zero-width escapes: they match the empty string at some positions. */
const EMPTY_ESCAPES = new Set(['b', 'B', 'A', 'z']);
const CONTROL_ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', f: '\f', v: '\v' };

class Unsupported extends Error {}

/** The lowered needles one of which every match contains, or undefined when none can be told. */
export function regexNeedles(source: string): string[] | undefined {
  let info: Info;
  try {
    const parser = new Parser(source);
    info = parser.alternation();
    if (!parser.done()) return undefined;
  } catch (error) {
    if (error instanceof Unsupported) return undefined;
    throw error;
  }
  const needs = needOf(info);
  if (!needs) return undefined;
  const lowered = [...new Set([...needs].map((n) => n.toLowerCase()))];
  return lowered.every((n) => n.length >= MIN_NEEDLE) ? lowered : undefined;
}

/** The best necessary set a part offers: its exact strings if none is empty, else its need. */
function needOf(info: Info): Set<string> | undefined {
  if (info.exact && ![...info.exact].some((s) => s === '')) return info.exact;
  return info.need;
}

/** A set is a better guard when its shortest needle is longer, then when it has fewer needles. */
function better(a: Set<string> | undefined, b: Set<string> | undefined): Set<string> | undefined {
  if (!a) return b;
  if (!b) return a;
  const shortest = (s: Set<string>) => Math.min(...[...s].map((x) => x.length));
  if (shortest(a) !== shortest(b)) return shortest(a) > shortest(b) ? a : b;
  return a.size <= b.size ? a : b;
}

function product(a: Set<string>, b: Set<string>): Set<string> | undefined {
  if (a.size * b.size > MAX_EXACT) return undefined;
  const out = new Set<string>();
  for (const x of a) for (const y of b) out.add(x + y);
  return out;
}

function concat(parts: Info[]): Info {
  let run: Set<string> | undefined = new Set(['']);
  let best: Set<string> | undefined;
  let allExact = true;
  for (const part of parts) {
    const joined: Set<string> | undefined = run && part.exact ? product(run, part.exact) : undefined;
    if (joined) {
      run = joined;
      continue;
    }
    // The run ends here: what it had is necessary, and so is whatever this part needs.
    allExact = false;
    best = better(best, run && needOf({ exact: run }));
    best = better(best, needOf(part));
    run = part.exact;
  }
  if (allExact) return { exact: run };
  return { need: better(best, run && needOf({ exact: run })) };
}

function alternate(branches: Info[]): Info {
  if (branches.length === 1) return branches[0]!;
  const exact = new Set<string>();
  for (const branch of branches) {
    if (!branch.exact) {
      exact.clear();
      break;
    }
    for (const s of branch.exact) exact.add(s);
  }
  if (exact.size > 0 && exact.size <= MAX_EXACT) return { exact };
  const need = new Set<string>();
  for (const branch of branches) {
    const n = needOf(branch);
    if (!n) return {};
    for (const s of n) need.add(s);
  }
  return { need };
}

class Parser {
  readonly #s: string;
  #i = 0;

  constructor(source: string) {
    this.#s = source;
  }

  done(): boolean {
    return this.#i === this.#s.length;
  }

  alternation(): Info {
    const branches = [this.sequence()];
    while (this.#s[this.#i] === '|') {
      this.#i++;
      branches.push(this.sequence());
    }
    return alternate(branches);
  }

  sequence(): Info {
    const parts: Info[] = [];
    while (this.#i < this.#s.length && this.#s[this.#i] !== '|' && this.#s[this.#i] !== ')') {
      parts.push(this.quantified(this.atom()));
    }
    return concat(parts);
  }

  quantified(atom: Info): Info {
    const c = this.#s[this.#i];
    let min: number;
    if (c === '*' || c === '?') {
      this.#i++;
      min = 0;
    } else if (c === '+') {
      this.#i++;
      min = 1;
    } else if (c === '{') {
      const m = /^\{(\d+)(,\d*)?\}/.exec(this.#s.slice(this.#i));
      if (!m) throw new Unsupported('brace');
      this.#i += m[0].length;
      min = Number(m[1]);
    } else {
      return atom;
    }
    if (this.#s[this.#i] === '?') this.#i++;
    if (/^[*+?{]/.test(this.#s[this.#i] ?? '')) throw new Unsupported('stacked quantifier');
    // Repeated at least once, a part still needs what it needs; optional, it needs nothing.
    return min === 0 ? {} : { need: needOf(atom) };
  }

  atom(): Info {
    const c = this.#s[this.#i]!;
    this.#i++;
    switch (c) {
      case '(':
        return this.group();
      case '[':
        return this.charClass();
      case '.':
        return {};
      case '^':
      case '$':
        return { exact: new Set(['']) };
      case '\\':
        return this.escape();
      case '*':
      case '+':
      case '?':
      case '{':
        throw new Unsupported('quantifier without operand');
      default:
        return { exact: new Set([c]) };
    }
  }

  group(): Info {
    if (this.#s[this.#i] === '?') {
      // (?:…), (?flags:…), (?flags), (?P<name>…), (?<name>…)
      const m = /^\?(?:P?<[A-Za-z_][A-Za-z0-9_]*>|[imsU-]*:|[imsU-]*\))/.exec(this.#s.slice(this.#i));
      if (!m) throw new Unsupported('group syntax');
      this.#i += m[0].length;
      if (m[0].endsWith(')')) return { exact: new Set(['']) };
    }
    const inner = this.alternation();
    if (this.#s[this.#i] !== ')') throw new Unsupported('unclosed group');
    this.#i++;
    return inner;
  }

  /** A class of plain characters is a small exact set; any other class matches one unknown character. */
  charClass(): Info {
    const start = this.#i;
    let negated = false;
    if (this.#s[this.#i] === '^') {
      negated = true;
      this.#i++;
    }
    const chars = new Set<string>();
    let plain = !negated;
    let first = true;
    for (;;) {
      const c = this.#s[this.#i];
      if (c === undefined) throw new Unsupported('unclosed class');
      if (c === ']' && !first) break;
      first = false;
      this.#i++;
      if (c === '[' && this.#s[this.#i] === ':') {
        const end = this.#s.indexOf(':]', this.#i);
        if (end < 0) throw new Unsupported('posix class');
        this.#i = end + 2;
        plain = false;
      } else {
        let char = c;
        if (c === '\\') {
          const e = this.#s[this.#i];
          if (e === undefined || /[A-Za-z0-9]/.test(e)) {
            // \s, \d and the like are sets of their own; \x, \p and the rest are not understood here.
            if (e === undefined || !CLASS_ESCAPES.has(e)) throw new Unsupported('class escape');
            plain = false;
          }
          this.#i++;
          char = e!;
        }
        if (this.#s[this.#i] === '-' && this.#s[this.#i + 1] !== ']') {
          // A range: its end may itself be an escaped character.
          this.#i++;
          if (this.#s[this.#i] === '\\') {
            if (/[A-Za-z0-9]/.test(this.#s[this.#i + 1] ?? '0')) throw new Unsupported('range escape');
            this.#i++;
          }
          if (this.#s[this.#i] === undefined) throw new Unsupported('unclosed range');
          this.#i++;
          plain = false;
        } else if (plain) {
          chars.add(char);
        }
      }
    }
    this.#i++;
    if (this.#i - start > 256) throw new Unsupported('long class');
    return plain && chars.size > 0 && chars.size <= MAX_EXACT ? { exact: chars } : {};
  }

  escape(): Info {
    const e = this.#s[this.#i];
    if (e === undefined) throw new Unsupported('trailing backslash');
    this.#i++;
    if (CLASS_ESCAPES.has(e)) return {};
    if (EMPTY_ESCAPES.has(e)) return { exact: new Set(['']) };
    const control = CONTROL_ESCAPES[e];
    if (control !== undefined) return { exact: new Set([control]) };
    // Punctuation escaped is itself; any other escape (\x, \p, \Q, digits, …) is not understood here.
    if (/[A-Za-z0-9]/.test(e)) throw new Unsupported(`escape \\${e}`);
    return { exact: new Set([e]) };
  }
}
