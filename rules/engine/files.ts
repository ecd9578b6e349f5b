// Stage one of loading, the only one that touches the disk: rule files and folders → sources (text with
// its file name). Folders are walked for .yml/.yaml in a stable order.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { RuleSource } from './load.ts';

export interface ReadResult {
  sources: RuleSource[];
  /** Paths that could not be read, with why. */
  unreadable: Array<{ path: string; message: string }>;
}

export function readRuleFiles(paths: readonly string[]): ReadResult {
  const result: ReadResult = { sources: [], unreadable: [] };
  const visit = (path: string) => {
    try {
      if (statSync(path).isDirectory()) {
        for (const name of readdirSync(path).sort()) {
          const child = join(path, name);
          if (statSync(child).isDirectory() || /\.ya?ml$/.test(name)) visit(child);
        }
        return;
      }
      result.sources.push({ file: path, text: readFileSync(path, 'utf8') });
    } catch (error) {
      result.unreadable.push({ path, message: (error as Error).message });
    }
  };
  for (const path of paths) visit(path);
  return result;
}
