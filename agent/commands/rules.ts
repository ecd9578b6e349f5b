// `omwatch-agent rules lint` and `rules test`: check rule files, and run rules over recorded events.
import { readFileSync } from 'node:fs';
import { loadRules, RuleEngine, type EngineEvent, type RuleProblem } from '../../rules/engine/index.ts';
import { createEnricher } from '../enrich/index.ts';
import { loadPolicy, PolicyJudge } from '../enrich/policy.ts';
import { createCatalog } from '../sensors/sessions/catalog.ts';
import { SessionRegistry } from '../sensors/sessions/registry.ts';
import type { Observation } from '../sensors/types.ts';
import { readRuleFiles } from '../../rules/engine/files.ts';
import { printable } from './text.ts';

export interface Output {
  out: (line: string) => void;
  err: (line: string) => void;
}

interface FileReport {
  file: string;
  ok: boolean;
  rules: number;
  errors: Array<{ code: string; message: string; line?: number }>;
  warnings: Array<{ code: string; message: string; line?: number }>;
}

/** Exit code 1 when any rule (or path) failed to load, else 0. */
export function lintRules(paths: string[], json: boolean, { out, err }: Output): number {
  const read = readRuleFiles(paths);
  for (const { path, message } of read.unreadable) err(`${path}: cannot read: ${message}`);
  const loaded = loadRules(read.sources);
  const reports = new Map<string, FileReport>();
  for (const source of read.sources) reports.set(source.file, { file: source.file, ok: true, rules: 0, errors: [], warnings: [] });
  for (const file of loaded.files) reports.get(file.file)!.rules = file.loaded;
  const brief = (p: RuleProblem) => (p.line === undefined ? { code: p.code, message: p.message } : { code: p.code, message: p.message, line: p.line });
  for (const problem of loaded.errors) {
    const report = reports.get(problem.file ?? '');
    if (!report) continue;
    report.ok = false;
    report.errors.push(brief(problem));
  }
  for (const problem of loaded.warnings) reports.get(problem.file ?? '')?.warnings.push(brief(problem));
  let failed = read.unreadable.length > 0;
  for (const report of reports.values()) {
    failed ||= !report.ok;
    if (json) {
      out(JSON.stringify(report));
      continue;
    }
    for (const e of report.errors) out(printable(`${report.file}:${e.line ?? 0}: error ${e.code}: ${e.message}`));
    for (const w of report.warnings) out(printable(`${report.file}:${w.line ?? 0}: warning ${w.code}: ${w.message}`));
  }
  if (!json) {
    out(`${loaded.rules.length} rules loaded from ${read.sources.length} files; ${loaded.errors.length} not loaded; ${loaded.warnings.length} warnings`);
  }
  return failed ? 1 : 0;
}

/**
 * Runs the rules over events (one envelope per line) and prints one JSON line per alert, in event
 * order; with a policy, events are first enriched with its verdicts. Rules that fail to load are
 * reported on stderr and skipped; exit 1 only if inputs are unreadable.
 */
export function testRules(rulePaths: string[], eventsPath: string, { out, err }: Output, policyPath?: string): number {
  const read = readRuleFiles(rulePaths);
  for (const { path, message } of read.unreadable) err(`${path}: cannot read: ${message}`);
  const loaded = loadRules(read.sources);
  for (const e of loaded.errors) err(printable(`${e.file}:${e.line ?? 0}: rule not loaded: ${e.code}: ${e.message}`));
  let text: string;
  try {
    text = readFileSync(eventsPath, 'utf8');
  } catch (error) {
    err(`${eventsPath}: cannot read: ${(error as Error).message}`);
    return 1;
  }
  if (read.sources.length === 0) return 1;
  const engine = new RuleEngine(loaded);
  // With a policy, each event is enriched as the agent would, judged for the host it names.
  const policy = policyPath === undefined ? undefined : loadPolicy(policyPath);
  const judges = new Map<string, PolicyJudge>();
  let judge: PolicyJudge | undefined;
  const enrich = createEnricher({ judge: () => judge, registry: new SessionRegistry(), catalog: createCatalog() });
  const lines = text.split('\n');
  for (const [index, line] of lines.entries()) {
    if (line.trim() === '') continue;
    const event = parseEvent(line);
    if (typeof event === 'string') {
      err(`${eventsPath}:${index + 1}: skipped: ${event}`);
      continue;
    }
    if (policy) {
      const hostName = event.host?.name ?? '';
      judge = judges.get(hostName);
      if (!judge) judges.set(hostName, (judge = new PolicyJudge(policy, hostName)));
      const observation = { category: event.category, timeMs: Date.parse(event.time), fields: event.fields } as Observation;
      event.fields = enrich(observation).fields as Record<string, unknown>;
    }
    for (const alert of engine.evaluate(event)) {
      out(JSON.stringify({
        ruleId: alert.rule.id, ruleTitle: alert.rule.title, level: alert.rule.level, eventIds: alert.eventIds, time: alert.time,
        author: alert.rule.author, tags: alert.rule.tags, id: alert.id, summary: alert.summary, ...(alert.sessionId ? { sessionId: alert.sessionId } : {}),
      }));
    }
  }
  return read.unreadable.length > 0 ? 1 : 0;
}

/** An event line, or why it cannot be one. */
function parseEvent(line: string): EngineEvent | string {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return 'not JSON';
  }
  if (value === null || typeof value !== 'object') return 'not a JSON object';
  const e = value as Record<string, unknown>;
  for (const key of ['id', 'time', 'category', 'product'] as const) {
    if (typeof e[key] !== 'string') return `'${key}' must be a string`;
  }
  if (e['fields'] === null || typeof e['fields'] !== 'object' || Array.isArray(e['fields'])) return "'fields' must be an object";
  const event: EngineEvent = { id: e['id'] as string, time: e['time'] as string, category: e['category'] as string, product: e['product'] as string, fields: e['fields'] as Record<string, unknown> };
  const host = e['host'] as Record<string, unknown> | undefined;
  if (host && typeof host['id'] === 'string' && typeof host['name'] === 'string') event.host = { id: host['id'], name: host['name'] };
  return event;
}
