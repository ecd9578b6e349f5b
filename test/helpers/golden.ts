// Golden-fixture tests (style.md §2): every file in fixtures/input/ that `match` selects goes through
// `parse`, and the result must equal fixtures/output/<name>.json. After a reviewed change of behaviour,
// OMWATCH_UPDATE_FIXTURES=1 rewrites the outputs.
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

export const UPDATE_FIXTURES = process.env['OMWATCH_UPDATE_FIXTURES'] === '1';

export interface GoldenOptions {
  /** The sensor's `fixtures/` folder, as a URL (`new URL('./fixtures/', import.meta.url)`). */
  fixtures: URL;
  /** Which inputs this parser takes (files or folders under fixtures/input/). */
  match: RegExp;
  /** Gets the input's path (a file or folder) and returns what must equal the golden output. */
  parse: (inputPath: string, name: string) => unknown;
}

export function goldenFixtures({ fixtures, match, parse }: GoldenOptions): void {
  const inputDir = new URL('./input/', fixtures);
  const outputDir = new URL('./output/', fixtures);
  const inputs = readdirSync(inputDir).filter((name) => match.test(name)).sort();
  describe(`golden fixtures ${match}`, () => {
    it('has fixtures to run', () => {
      expect(inputs.length).toBeGreaterThan(0);
    });
    it.each(inputs)('%s', (name) => {
      const inputPath = new URL(name, inputDir).pathname;
      const actual = JSON.parse(JSON.stringify(parse(inputPath, name))) as unknown;
      const base = statSync(inputPath).isDirectory() ? name : name.replace(/\.[^.]+$/, '');
      const outputFile = new URL(`${base}.json`, outputDir);
      if (UPDATE_FIXTURES) writeFileSync(outputFile, `${JSON.stringify(actual, null, 2)}\n`);
      expect(actual).toEqual(JSON.parse(readFileSync(outputFile, 'utf8')));
    });
  });
}
