// The Sigma condition language (sigma-semantics.md §4) parsed into a tree, then bound to a rule's
// search identifiers. Precedence, loosest first: or, and, not, `x of`, parentheses. Lower-case only.
import { RuleError, RuleErrorCode } from './errors.ts';

export type ConditionNode =
  | { kind: 'and' | 'or'; left: ConditionNode; right: ConditionNode }
  | { kind: 'not'; operand: ConditionNode }
  | { kind: 'id'; name: string }
  | { kind: 'of'; quantifier: 'any' | 'all'; pattern: string };

type Token = { type: 'word'; text: string; at: number } | { type: '('; at: number } | { type: ')'; at: number };

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  const re = /\s*(?:(\()|(\))|([A-Za-z0-9_*]+)|(\S))/y;
  let match: RegExpExecArray | null;
  while (re.lastIndex < text.length && (match = re.exec(text))) {
    const at = match.index + match[0].length - (match[1] ?? match[2] ?? match[3] ?? match[4] ?? '').length;
    if (match[1]) tokens.push({ type: '(', at });
    else if (match[2]) tokens.push({ type: ')', at });
    else if (match[3]) tokens.push({ type: 'word', text: match[3], at });
    else if (match[4] === '|') throw new RuleError(RuleErrorCode.AGGREGATION, `the aggregation syntax ('| count() …') at column ${at + 1} is deprecated; use a correlation rule`);
    else if (match[4]) throw new RuleError(RuleErrorCode.BAD_CONDITION, `unexpected '${match[4]}' at column ${at + 1}`);
  }
  return tokens;
}

const KEYWORDS = new Set(['and', 'or', 'not', 'of', '1', 'any', 'all', 'them']);

/** Parses a condition string; throws RuleError with the column of the problem. */
export function parseCondition(text: string): ConditionNode {
  const tokens = tokenize(text);
  let pos = 0;
  const peek = () => tokens[pos];
  const isWord = (word: string) => {
    const token = peek();
    return token?.type === 'word' && token.text === word;
  };
  const fail = (what: string): never => {
    const token = peek();
    const where = token ? `at column ${token.at + 1}` : 'at the end';
    throw new RuleError(RuleErrorCode.BAD_CONDITION, `${what} ${where} of '${text}'`);
  };

  function parseOr(): ConditionNode {
    let left = parseAnd();
    while (isWord('or')) {
      pos++;
      left = { kind: 'or', left, right: parseAnd() };
    }
    return left;
  }
  function parseAnd(): ConditionNode {
    let left = parseNot();
    while (isWord('and')) {
      pos++;
      left = { kind: 'and', left, right: parseNot() };
    }
    return left;
  }
  function parseNot(): ConditionNode {
    if (isWord('not')) {
      pos++;
      return { kind: 'not', operand: parseNot() };
    }
    return parsePrimary();
  }
  function parsePrimary(): ConditionNode {
    const token = peek();
    if (!token) return fail('expected an identifier');
    if (token.type === '(') {
      pos++;
      const inner = parseOr();
      if (peek()?.type !== ')') fail("expected ')'");
      pos++;
      return inner;
    }
    if (token.type === ')') return fail("unexpected ')'");
    const word = token.text;
    if (word === '1' || word === 'any' || word === 'all') {
      pos++;
      if (!isWord('of')) fail(`expected 'of' after '${word}'`);
      pos++;
      const target = peek();
      if (target?.type !== 'word' || (KEYWORDS.has(target.text) && target.text !== 'them')) return fail('expected an identifier pattern or \'them\'');
      pos++;
      return { kind: 'of', quantifier: word === 'all' ? 'all' : 'any', pattern: target.text };
    }
    if (KEYWORDS.has(word.toLowerCase()) || word.includes('*')) {
      if (KEYWORDS.has(word.toLowerCase()) && word !== word.toLowerCase()) fail(`operators are lower case: '${word}'`);
      fail(`unexpected '${word}'`);
    }
    pos++;
    return { kind: 'id', name: word };
  }

  const tree = parseOr();
  if (pos < tokens.length) fail('unexpected text');
  return tree;
}

/** The identifiers an `x of` pattern covers: `*` is the only wildcard; `_`-names only if asked for. */
export function identifiersMatching(pattern: string, identifiers: readonly string[]): string[] {
  if (pattern === 'them') return identifiers.filter((id) => !id.startsWith('_'));
  const re = new RegExp(`^${pattern.split('*').map(escapeRegExp).join('.*')}$`);
  return identifiers.filter((id) => re.test(id) && (!id.startsWith('_') || pattern.startsWith('_')));
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
