// The text of the rules alerts name, for an analyst reading an alert: read once from the rule packs
// the product ships (and any folders given), indexed by rule id. A rule the collector does not hold
// (a site's own, loaded only on its agents) has no text here, and the API says so.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

export const SHIPPED_PACKS = fileURLToPath(new URL('../../rules/packs/', import.meta.url));

export interface RuleText {
  id: string;
  /** The rule as written, YAML. */
  text: string;
  /** The file it came from, relative to its folder. */
  source: string;
}

/** Rule texts by id from every `.yml`/`.yaml` file in the folders; unreadable files are skipped and named. */
export function readRuleTexts(folders: readonly string[]): { rules: Map<string, RuleText>; skipped: string[] } {
  const rules = new Map<string, RuleText>();
  const skipped: string[] = [];
  for (const folder of folders) {
    let names: string[];
    try {
      names = readdirSync(folder, { recursive: true, encoding: 'utf8' }).filter((name) => /\.ya?ml$/.test(name)).sort();
    } catch (error) {
      skipped.push(`${folder}: ${(error as Error).message}`);
      continue;
    }
    for (const name of names) {
      let text: string;
      try {
        text = readFileSync(join(folder, name), 'utf8');
      } catch (error) {
        skipped.push(`${join(folder, name)}: ${(error as Error).message}`);
        continue;
      }
      for (const document of parseAllDocuments(text)) {
        if (!('errors' in document) || document.errors.length > 0) continue;
        const id = document.get('id');
        if (typeof id !== 'string' || rules.has(id)) continue;
        rules.set(id, { id, text: document.toString().trimEnd(), source: name });
      }
    }
  }
  return { rules, skipped };
}
