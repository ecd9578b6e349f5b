// The rules and the policy the running agent judges events by, and their reload (SIGHUP, or a change
// of the files): a reload is all or nothing, so a broken edit keeps the last good set and logs why.
import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';
import { loadRules, RuleEngine, type LoadResult } from '../../rules/engine/index.ts';
import { readRuleFiles } from '../../rules/engine/files.ts';
import { loadPolicy, PolicyJudge } from '../enrich/policy.ts';
import type { Logger } from '../log/index.ts';

/** The default pack shipped with the agent. */
export const DEFAULT_RULES = new URL('../../rules/packs', import.meta.url).pathname;
const RELOAD_DEBOUNCE_MS = 200;

export interface RuleSetOptions {
  rulePaths: string[];
  policyPath?: string;
  hostName: string;
  logger: Logger;
  /** Told after every load that took effect (the first included). */
  onLoaded?: (summary: { rules: number; errors: number; version: string }) => void;
}

export class RuleSet {
  engine: RuleEngine;
  judge: PolicyJudge | undefined;
  version: string;
  readonly #options: RuleSetOptions;
  #loaded: LoadResult;
  #watchers: FSWatcher[] = [];
  #timer: NodeJS.Timeout | undefined;

  /** Loads the rules and the policy; a policy that does not load is an error at start. */
  constructor(options: RuleSetOptions) {
    this.#options = options;
    const { loaded, version } = this.#read();
    this.#loaded = loaded;
    this.version = version;
    this.engine = new RuleEngine(loaded);
    this.judge = options.policyPath ? new PolicyJudge(loadPolicy(options.policyPath), options.hostName) : undefined;
    this.#report(loaded);
    options.onLoaded?.({ rules: loaded.rules.length + loaded.correlations.length, errors: loaded.errors.length, version });
  }

  /** Re-reads rules and policy. Each is replaced only if it loads at least as cleanly as before. */
  reload(): void {
    const { logger } = this.#options;
    const { loaded, version } = this.#read();
    const before = new Set(this.#loaded.errors.map(problemKey));
    const fresh = loaded.errors.filter((e) => !before.has(problemKey(e)));
    if (fresh.length > 0) {
      for (const e of fresh) logger.error({ file: e.file, line: e.line, code: e.code }, `rule reload refused, keeping the previous rules: ${e.message}`);
    } else if (version !== this.version) {
      this.#loaded = loaded;
      this.version = version;
      this.engine = new RuleEngine(loaded);
      this.#report(loaded);
      this.#options.onLoaded?.({ rules: loaded.rules.length + loaded.correlations.length, errors: loaded.errors.length, version });
    }
    if (this.#options.policyPath) {
      try {
        this.judge = new PolicyJudge(loadPolicy(this.#options.policyPath), this.#options.hostName);
        logger.info({ policy: this.#options.policyPath }, 'policy loaded');
      } catch (error) {
        logger.error({ policy: this.#options.policyPath }, `policy reload refused, keeping the previous policy: ${(error as Error).message}`);
      }
    }
  }

  /** Reloads when a rule file, a rule folder or the policy file changes (debounced). */
  watch(): void {
    const targets = [...this.#options.rulePaths, ...(this.#options.policyPath ? [dirname(this.#options.policyPath)] : [])];
    for (const target of targets) {
      try {
        const watcher = watch(target, { recursive: true }, () => {
          if (this.#timer) clearTimeout(this.#timer);
          this.#timer = setTimeout(() => this.reload(), RELOAD_DEBOUNCE_MS);
          this.#timer.unref();
        });
        watcher.unref();
        this.#watchers.push(watcher);
      } catch (error) {
        this.#options.logger.warn({ path: target }, `cannot watch for changes (reload with SIGHUP): ${(error as Error).message}`);
      }
    }
  }

  close(): void {
    for (const watcher of this.#watchers) watcher.close();
    this.#watchers = [];
    if (this.#timer) clearTimeout(this.#timer);
  }

  #read(): { loaded: LoadResult; version: string } {
    const read = readRuleFiles(this.#options.rulePaths);
    for (const { path, message } of read.unreadable) this.#options.logger.error({ path }, `cannot read rules: ${message}`);
    const hash = createHash('sha256');
    for (const source of read.sources) hash.update(source.file).update('\0').update(source.text).update('\0');
    return { loaded: loadRules(read.sources), version: hash.digest('hex').slice(0, 16) };
  }

  #report(loaded: LoadResult): void {
    for (const e of loaded.errors) this.#options.logger.warn({ file: e.file, line: e.line, code: e.code }, `rule not loaded: ${e.message}`);
  }
}

function problemKey(problem: { file?: string; code: string; message: string }): string {
  return `${problem.file}\0${problem.code}\0${problem.message}`;
}
