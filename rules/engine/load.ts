// Loading in stages (design.md §7, after Falco's rule loader): read YAML with file and line →
// compile each rule → index by logsource. The result is whole: every rule either loaded or has an
// error with a stable code; one bad rule never stops the others. Pure: sources come in as text.
import { LineCounter, parseAllDocuments } from 'yaml';
import { compileRule, IdentifierError, type CompiledRule } from './compile.ts';
import { parseCorrelation, type CorrelationRule } from './correlation.ts';
import { LiteralIndex } from './literals.ts';
import { routeKey } from './routes.ts';
import { RuleError, RuleErrorCode, RuleWarningCode, type RuleProblem } from './errors.ts';

export interface RuleSource {
  file: string;
  text: string;
}

export interface LoadResult {
  rules: CompiledRule[];
  /**
   * The literal tests of the loaded rules, one index per route, so an event scans its fields only
   * for the rules that can match it (a Linux event never pays for Windows rules' literals).
   */
  literals: Map<string, LiteralIndex>;
  correlations: CorrelationRule[];
  errors: RuleProblem[];
  warnings: RuleProblem[];
  /** Per file: how many rules it held and how many loaded. */
  files: Array<{ file: string; documents: number; loaded: number }>;
}

export function loadRules(sources: readonly RuleSource[]): LoadResult {
  const result: LoadResult = { rules: [], literals: new Map(), correlations: [], errors: [], warnings: [], files: [] };
  const ids = new Map<string, { title: string; source: { file: string; line: number } }>();
  const loadedIn = new Map<CorrelationRule, string>();
  for (const { file, text } of sources) {
    const lines = new LineCounter();
    const documents = parseAllDocuments(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
    if (!Array.isArray(documents)) {
      result.files.push({ file, documents: 0, loaded: 0 });
      continue;
    }
    let loaded = 0;
    let count = 0;
    for (const document of documents) {
      const start = document.contents?.range?.[0] ?? 0;
      const line = lines.linePos(start).line;
      if (document.errors.length > 0) {
        const error = document.errors[0]!;
        count++;
        result.errors.push({ code: RuleErrorCode.YAML, message: `not valid YAML: ${error.message.split('\n')[0]}`, file, line: error.linePos?.[0].line ?? line });
        continue;
      }
      const doc: unknown = document.toJS({ maxAliasCount: 100 });
      if (doc === null || doc === undefined) continue;
      count++;
      if (typeof doc !== 'object' || Array.isArray(doc)) {
        result.errors.push({ code: RuleErrorCode.YAML, message: 'a rule document must be a mapping', file, line });
        continue;
      }
      const rule = doc as Record<string, unknown>;
      const problem = (code: RuleProblem['code'], message: string, at = line): RuleProblem => {
        const p: RuleProblem = { code, message, file, line: at };
        if (typeof rule['id'] === 'string') p.ruleId = rule['id'];
        if (typeof rule['title'] === 'string') p.ruleTitle = rule['title'];
        return p;
      };
      try {
        const compiled = 'correlation' in rule ? parseCorrelation(rule, { file, line }) : compileRule(rule, { file, line }, { literals: indexFor(result, rule['logsource']) });
        const previous = ids.get(compiled.id);
        if (previous) {
          result.errors.push(problem(RuleErrorCode.DUPLICATE_ID, `id ${compiled.id} is already used by '${previous.title}' (${previous.source.file}:${previous.source.line})`));
          continue;
        }
        ids.set(compiled.id, compiled);
        if ('type' in compiled) {
          result.correlations.push(compiled);
          loadedIn.set(compiled, file);
        } else {
          if (!compiled.author) result.warnings.push(problem(RuleWarningCode.SUSPICIOUS, "no 'author': alerts will carry none"));
          result.rules.push(compiled);
        }
        loaded++;
      } catch (error) {
        if (!(error instanceof RuleError)) throw error;
        const at = error instanceof IdentifierError ? lineOfKey(document, lines, ['detection', error.identifier]) ?? line : line;
        result.errors.push(problem(error.code, error.message, at));
      }
    }
    result.files.push({ file, documents: count, loaded });
  }
  dropUnresolvedCorrelations(result, loadedIn);
  return result;
}

/** A correlation must name rules (or correlations) that loaded; one that does not is dropped. */
function dropUnresolvedCorrelations(result: LoadResult, loadedIn: Map<CorrelationRule, string>): void {
  const known = new Set<string>();
  for (const rule of [...result.rules, ...result.correlations]) {
    known.add(rule.id);
    if (rule.name) known.add(rule.name);
  }
  result.correlations = result.correlations.filter((correlation) => {
    const missing = correlation.refs.filter((ref) => !known.has(ref) || ref === correlation.id || ref === correlation.name);
    if (missing.length === 0) return true;
    const file = loadedIn.get(correlation)!;
    result.errors.push({
      code: RuleErrorCode.BAD_CORRELATION, file, line: correlation.source.line, ruleId: correlation.id, ruleTitle: correlation.title,
      message: `names rules that are not loaded: ${missing.join(', ')}`,
    });
    const stats = result.files.find((f) => f.file === file);
    if (stats) stats.loaded--;
    return false;
  });
}

function indexFor(result: LoadResult, logsource: unknown): LiteralIndex {
  const source = (logsource !== null && typeof logsource === 'object' ? logsource : {}) as Record<string, unknown>;
  const text = (key: string) => (typeof source[key] === 'string' ? source[key] as string : undefined);
  const key = text('service') === undefined ? routeKey(text('category'), text('product')) : `service\0${text('service')}`;
  let index = result.literals.get(key);
  if (!index) result.literals.set(key, (index = new LiteralIndex()));
  return index;
}

function lineOfKey(document: ReturnType<typeof parseAllDocuments>[number] & object, lines: LineCounter, path: string[]): number | undefined {
  if (!('getIn' in document)) return undefined;
  const node = document.getIn(path, true) as { range?: [number, number, number] } | undefined;
  const at = node?.range?.[0];
  return at === undefined ? undefined : lines.linePos(at).line;
}
