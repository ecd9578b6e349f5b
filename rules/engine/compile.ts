// Stage two of loading: one Sigma rule document → a compiled rule (metadata + one matcher), or a
// RuleError naming what is wrong. Pure: no I/O, no clock.
import { identifiersMatching, parseCondition, type ConditionNode } from './condition.ts';
import { RuleError, RuleErrorCode } from './errors.ts';
import { compileItem, every, parseKey, some, type CompileContext, type Matcher, type ScalarValue } from './modifiers.ts';

export type Level = 'informational' | 'low' | 'medium' | 'high' | 'critical';
const LEVELS = new Set<Level>(['informational', 'low', 'medium', 'high', 'critical']);

export interface RuleMeta {
  id: string;
  /** A correlation refers to a rule by id or by this name. */
  name?: string;
  title: string;
  level: Level;
  tags: string[];
  /** The Detection Rule License asks that every alert keep the rule's author. */
  author: string;
  status?: string;
  description?: string;
  falsepositives?: string[];
  logsource: { category?: string; product?: string; service?: string };
  source: { file: string; line: number };
}

export interface CompiledRule extends RuleMeta {
  match: Matcher;
}

type Doc = Record<string, unknown>;

/** Finds the 1-based line of a detection key, for errors that concern one search identifier. */
export type LineOf = (path: readonly string[]) => number | undefined;

export class IdentifierError extends RuleError {
  readonly identifier: string;
  constructor(identifier: string, cause: RuleError) {
    super(cause.code, `${identifier}: ${cause.message}`);
    this.identifier = identifier;
  }
}

export function compileRule(doc: Doc, source: { file: string; line: number }, context: CompileContext = {}): CompiledRule {
  const meta = ruleMeta(doc, source);
  const detection = doc['detection'];
  if (!isMap(detection)) throw new RuleError(RuleErrorCode.SCHEMA, "'detection' must be a mapping");
  return { ...meta, match: compileDetection(detection, context) };
}

export function ruleMeta(doc: Doc, source: { file: string; line: number }): RuleMeta {
  const title = doc['title'];
  if (typeof title !== 'string' || title.trim() === '') throw new RuleError(RuleErrorCode.SCHEMA, "'title' must be a non-empty string");
  const id = doc['id'];
  if (id !== undefined && typeof id !== 'string') throw new RuleError(RuleErrorCode.SCHEMA, "'id' must be a string");
  const logsource = doc['logsource'];
  if (logsource !== undefined && !isMap(logsource)) throw new RuleError(RuleErrorCode.SCHEMA, "'logsource' must be a mapping");
  const level = doc['level'] ?? 'medium';
  if (typeof level !== 'string' || !LEVELS.has(level as Level)) throw new RuleError(RuleErrorCode.SCHEMA, `'level' must be one of ${[...LEVELS].join(', ')}, got ${JSON.stringify(level)}`);
  const tags = doc['tags'] ?? [];
  if (!Array.isArray(tags) || tags.some((t) => typeof t !== 'string')) throw new RuleError(RuleErrorCode.SCHEMA, "'tags' must be a list of strings");
  const author = doc['author'];
  const meta: RuleMeta = {
    id: id ?? `${source.file}:${source.line}`,
    title,
    level: level as Level,
    tags: tags as string[],
    author: typeof author === 'string' ? author : '',
    logsource: pickLogsource(logsource),
    source,
  };
  if (typeof doc['name'] === 'string') meta.name = doc['name'];
  if (typeof doc['status'] === 'string') meta.status = doc['status'];
  if (typeof doc['description'] === 'string') meta.description = doc['description'];
  const falsepositives = doc['falsepositives'];
  if (Array.isArray(falsepositives)) meta.falsepositives = falsepositives.map(String);
  return meta;
}

function pickLogsource(value: unknown): RuleMeta['logsource'] {
  const logsource: RuleMeta['logsource'] = {};
  if (!isMap(value)) return logsource;
  for (const key of ['category', 'product', 'service'] as const) {
    if (typeof value[key] === 'string') logsource[key] = value[key];
  }
  return logsource;
}

function compileDetection(detection: Doc, context: CompileContext): Matcher {
  const searches = new Map<string, Matcher>();
  for (const [identifier, definition] of Object.entries(detection)) {
    if (identifier === 'condition') continue;
    if (identifier === 'timeframe') throw new RuleError(RuleErrorCode.AGGREGATION, "'timeframe' belongs to the deprecated aggregation syntax; use a correlation rule");
    try {
      searches.set(identifier, compileSearch(definition, context));
    } catch (error) {
      if (error instanceof RuleError) throw new IdentifierError(identifier, error);
      throw error;
    }
  }
  const condition = detection['condition'];
  const texts = typeof condition === 'string' ? [condition] : Array.isArray(condition) && condition.every((c) => typeof c === 'string') ? condition as string[] : undefined;
  if (!texts || texts.length === 0) throw new RuleError(RuleErrorCode.SCHEMA, "'detection.condition' must be a string or a list of strings");
  const names = [...searches.keys()];
  return some(texts.map((text) => bind(parseCondition(text), searches, names)));
}

function bind(node: ConditionNode, searches: Map<string, Matcher>, names: string[]): Matcher {
  switch (node.kind) {
    case 'and':
      return every([bind(node.left, searches, names), bind(node.right, searches, names)]);
    case 'or':
      return some([bind(node.left, searches, names), bind(node.right, searches, names)]);
    case 'not': {
      const operand = bind(node.operand, searches, names);
      return (view) => !operand(view);
    }
    case 'id': {
      const search = searches.get(node.name);
      if (!search) throw new RuleError(RuleErrorCode.UNKNOWN_IDENTIFIER, `the condition names '${node.name}', which the detection does not define`);
      return search;
    }
    case 'of': {
      const matched = identifiersMatching(node.pattern, names);
      if (matched.length === 0) throw new RuleError(RuleErrorCode.UNKNOWN_IDENTIFIER, `'${node.quantifier === 'all' ? 'all' : '1'} of ${node.pattern}' matches no search identifier`);
      const matchers = matched.map((name) => searches.get(name)!);
      return node.quantifier === 'all' ? every(matchers) : some(matchers);
    }
  }
}

/** A search identifier's definition: a map (AND), a list of maps (OR), or keywords (OR). */
function compileSearch(definition: unknown, context: CompileContext): Matcher {
  if (definition === null || definition === undefined) throw new RuleError(RuleErrorCode.SCHEMA, 'an empty search');
  if (isMap(definition)) return compileMap(definition, context);
  if (Array.isArray(definition)) {
    if (definition.length === 0) throw new RuleError(RuleErrorCode.SCHEMA, 'an empty list');
    if (definition.every(isMap)) return some(definition.map((map) => compileMap(map as Doc, context)));
    if (definition.every(isScalar)) return compileItem({ field: undefined, modifiers: [], values: definition as ScalarValue[] }, context);
    throw new RuleError(RuleErrorCode.SCHEMA, 'a list that mixes maps and keywords');
  }
  if (isScalar(definition)) return compileItem({ field: undefined, modifiers: [], values: [definition] }, context);
  throw new RuleError(RuleErrorCode.SCHEMA, `a search of type ${typeof definition}`);
}

function compileMap(map: Doc, context: CompileContext): Matcher {
  const entries = Object.entries(map);
  if (entries.length === 0) throw new RuleError(RuleErrorCode.SCHEMA, 'an empty map');
  return every(entries.map(([key, value]) => {
    const { field, modifiers } = parseKey(key);
    const values = Array.isArray(value) ? value : [value];
    if (!values.every(isScalar)) throw new RuleError(RuleErrorCode.SCHEMA, `'${key}' must hold a value or a list of values`);
    return compileItem({ field, modifiers, values: values as ScalarValue[] }, context);
  }));
}

function isMap(value: unknown): value is Doc {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function isScalar(value: unknown): value is ScalarValue {
  return value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean';
}
