// The detection language, traced to ../shared/docs/sigma-semantics.md: each describe names its section.
import { describe, expect, it } from 'vitest';
import { loadRules, RuleEngine, RuleErrorCode, type RuleProblem } from './index.ts';

/** Loads one rule whose detection is `detection` (YAML, indented under `detection:`). */
function ruleFrom(detection: string): { engine: RuleEngine; errors: RuleProblem[] } {
  const text = `title: t\nid: r-1\nauthor: tester\nlogsource:\n  category: process_creation\n  product: linux\ndetection:\n${detection.replace(/^/gm, '  ')}\n`;
  const loaded = loadRules([{ file: 'rule.yml', text }]);
  return { engine: new RuleEngine(loaded), errors: loaded.errors };
}

function matches(detection: string, fields: Record<string, unknown>): boolean {
  const { engine, errors } = ruleFrom(detection);
  expect(errors).toEqual([]);
  return engine.evaluate({ id: 'e', time: '2026-11-28T10:15:30Z', category: 'process_creation', product: 'linux', fields }).length > 0;
}

function errorOf(detection: string): string | undefined {
  return ruleFrom(detection).errors[0]?.code;
}

describe('§1 structure', () => {
  it('ANDs the keys of a map', () => {
    const d = 'sel:\n  Image: /bin/a\n  User: root\ncondition: sel';
    expect(matches(d, { Image: '/bin/a', User: 'root' })).toBe(true);
    expect(matches(d, { Image: '/bin/a', User: 'bob' })).toBe(false);
  });
  it('ORs a list of maps', () => {
    const d = 'sel:\n  - Image: /bin/a\n  - User: root\ncondition: sel';
    expect(matches(d, { Image: '/bin/b', User: 'root' })).toBe(true);
    expect(matches(d, { Image: '/bin/b', User: 'bob' })).toBe(false);
  });
  it('searches keywords across every field, case-insensitively, as substrings', () => {
    const d = "kw:\n  - 'Mimikatz'\n  - 'sekurlsa'\ncondition: kw";
    expect(matches(d, { CommandLine: 'run MIMIKATZ.exe now' })).toBe(true);
    expect(matches(d, { Image: '/x', CommandLine: 'clean' })).toBe(false);
  });
  it('searches keywords in numbers and booleans as written (the scan skips them only when no keyword could occur there)', () => {
    expect(matches("kw:\n  - '4123'\ncondition: kw", { ProcessId: 941_237 })).toBe(true);
    expect(matches("kw:\n  - 'e+21'\ncondition: kw", { Size: 1e21 })).toBe(true);
    expect(matches("kw:\n  - 'nan'\ncondition: kw", { Ratio: Number.NaN })).toBe(true);
    expect(matches("kw:\n  - 'RU'\ncondition: kw", { Flag: true })).toBe(true);
    expect(matches("kw:\n  - 'alS'\ncondition: kw", { Flag: false })).toBe(true);
    expect(matches("kw:\n  - 'x1'\n  - 'truex'\ncondition: kw", { ProcessId: 1, Flag: true })).toBe(false);
  });
  it('ORs a value list and ANDs it under all', () => {
    expect(matches("sel:\n  CommandLine|contains:\n    - 'a1'\n    - 'b2'\ncondition: sel", { CommandLine: 'xx b2' })).toBe(true);
    expect(matches("sel:\n  CommandLine|contains|all:\n    - 'a1'\n    - 'b2'\ncondition: sel", { CommandLine: 'xx b2' })).toBe(false);
    expect(matches("sel:\n  CommandLine|contains|all:\n    - 'a1'\n    - 'b2'\ncondition: sel", { CommandLine: 'b2 a1' })).toBe(true);
  });
  it('takes a key with no field as a keyword item with modifiers', () => {
    expect(matches("kw:\n  '|all':\n    - 'foo'\n    - 'bar'\ncondition: kw", { A: 'foo', B: 'bar' })).toBe(true);
    expect(matches("kw:\n  '|all':\n    - 'foo'\n    - 'bar'\ncondition: kw", { A: 'foo' })).toBe(false);
  });
  it('reads an empty list as null, and refuses an empty detection', () => {
    expect(matches('sel:\n  ParentImage: []\ncondition: sel', { Image: '/x' })).toBe(true);
    expect(matches('sel:\n  ParentImage: []\ncondition: sel', { ParentImage: '/x' })).toBe(false);
    expect(errorOf('sel: {}\ncondition: sel')).toBe(RuleErrorCode.SCHEMA);
    expect(errorOf('sel:\ncondition: sel')).toBe(RuleErrorCode.SCHEMA);
  });
});

describe('§2 matching defaults', () => {
  it('compares numbers and booleans as case-insensitive strings', () => {
    expect(matches('sel:\n  EventID: 4688\ncondition: sel', { EventID: '4688' })).toBe(true);
    expect(matches("sel:\n  EventID: '4688'\ncondition: sel", { EventID: 4688 })).toBe(true);
    expect(matches("sel:\n  Initiated: 'true'\ncondition: sel", { Initiated: true })).toBe(true);
    expect(matches("sel:\n  User: 'ROOT'\ncondition: sel", { User: 'root' })).toBe(true);
  });
  it('matches the whole value unless a wildcard or modifier says otherwise', () => {
    expect(matches("sel:\n  Image: '/bin/sh'\ncondition: sel", { Image: '/bin/sha' })).toBe(false);
    expect(matches("sel:\n  Image: '/bin/s*'\ncondition: sel", { Image: '/bin/sha' })).toBe(true);
    expect(matches("sel:\n  Image: '/bin/s?'\ncondition: sel", { Image: '/bin/sh' })).toBe(true);
    expect(matches("sel:\n  Image: '/bin/s?'\ncondition: sel", { Image: '/bin/s' })).toBe(false);
    expect(matches("sel:\n  CommandLine: '*a*b?c*'\ncondition: sel", { CommandLine: 'xxaYYbZcQQ' })).toBe(true);
    expect(matches("sel:\n  CommandLine: '*a*b?c*'\ncondition: sel", { CommandLine: 'xxaYYbcQQ' })).toBe(false);
  });
  it('applies escapes after YAML: \\* and \\? literal, \\\\ one backslash, other backslashes literal', () => {
    expect(matches("sel:\n  CommandLine: 'a\\*b'\ncondition: sel", { CommandLine: 'a*b' })).toBe(true);
    expect(matches("sel:\n  CommandLine: 'a\\*b'\ncondition: sel", { CommandLine: 'axxb' })).toBe(false);
    expect(matches("sel:\n  CommandLine: 'what\\?'\ncondition: sel", { CommandLine: 'what?' })).toBe(true);
    expect(matches("sel:\n  Image: 'C:\\Windows\\*'\ncondition: sel", { Image: 'C:\\Windows*' })).toBe(true);
    expect(matches("sel:\n  Image: 'C:\\Windows\\*'\ncondition: sel", { Image: 'C:\\Windows\\x' })).toBe(false);
    expect(matches("sel:\n  Image: 'C:\\Windows\\\\*'\ncondition: sel", { Image: 'C:\\Windows\\x' })).toBe(true);
    expect(matches("sel:\n  Share: '\\\\\\\\srv\\share'\ncondition: sel", { Share: '\\\\srv\\share' })).toBe(true);
  });
  it('is false on a missing field, so its negation is true', () => {
    expect(matches("sel:\n  Missing: 'x'\ncondition: sel", { Image: '/x' })).toBe(false);
    expect(matches("sel:\n  Missing: 'x'\ncondition: not sel", { Image: '/x' })).toBe(true);
  });
  it('reads null as absent, and the empty string as a value', () => {
    expect(matches('sel:\n  ParentImage: null\ncondition: sel', { Image: '/x' })).toBe(true);
    expect(matches('sel:\n  ParentImage: null\ncondition: sel', { ParentImage: null })).toBe(true);
    expect(matches("sel:\n  ParentImage: ''\ncondition: sel", { ParentImage: '' })).toBe(true);
    expect(matches("sel:\n  ParentImage: ''\ncondition: sel", { Image: '/x' })).toBe(false);
    expect(errorOf("sel:\n  ParentImage:\n    - null\n    - 'x'\ncondition: sel")).toBe(RuleErrorCode.BAD_VALUE);
    expect(errorOf('kw:\n  - null\ncondition: kw')).toBe(RuleErrorCode.BAD_VALUE);
  });
});

describe('§3 modifiers', () => {
  it('contains, startswith, endswith keep inner wildcards', () => {
    expect(matches("sel:\n  CommandLine|contains: 'a*c'\ncondition: sel", { CommandLine: 'xxabbcxx' })).toBe(true);
    expect(matches("sel:\n  Image|startswith: '/usr/'\ncondition: sel", { Image: '/usr/bin/x' })).toBe(true);
    expect(matches("sel:\n  Image|endswith: '/nc'\ncondition: sel", { Image: '/usr/bin/nc' })).toBe(true);
    expect(matches("sel:\n  Image|endswith: '/nc'\ncondition: sel", { Image: '/usr/bin/ncat' })).toBe(false);
  });
  it('all without contains can never match distinct values', () => {
    expect(matches("sel:\n  Image|all:\n    - 'a'\n    - 'b'\ncondition: sel", { Image: 'a' })).toBe(false);
  });
  it('re is a case-sensitive substring search, with i, m and s flags', () => {
    expect(matches("sel:\n  CommandLine|re: 'nc\\s+-e'\ncondition: sel", { CommandLine: 'x nc  -e y' })).toBe(true);
    expect(matches("sel:\n  CommandLine|re: 'NC'\ncondition: sel", { CommandLine: 'nc' })).toBe(false);
    expect(matches("sel:\n  CommandLine|re|i: 'NC'\ncondition: sel", { CommandLine: 'nc' })).toBe(true);
    expect(matches("sel:\n  CommandLine|re|m: '^b$'\ncondition: sel", { CommandLine: 'a\nb\nc' })).toBe(true);
    expect(matches("sel:\n  CommandLine|re: '^b$'\ncondition: sel", { CommandLine: 'a\nb\nc' })).toBe(false);
    expect(matches("sel:\n  CommandLine|re|s: 'a.b'\ncondition: sel", { CommandLine: 'a\nb' })).toBe(true);
    expect(matches("sel:\n  CommandLine|re: 'a.b'\ncondition: sel", { CommandLine: 'a\nb' })).toBe(false);
    expect(matches("sel:\n  CommandLine|re: '(?:x|y){2,3}'\ncondition: sel", { CommandLine: '--xyx--' })).toBe(true);
  });
  it('re must come first, and flags need re', () => {
    expect(errorOf("sel:\n  CommandLine|contains|re: 'x'\ncondition: sel")).toBe(RuleErrorCode.MODIFIER_ORDER);
    expect(errorOf("sel:\n  CommandLine|i: 'x'\ncondition: sel")).toBe(RuleErrorCode.MODIFIER_ORDER);
    expect(errorOf("sel:\n  CommandLine|re: '(?=x)'\ncondition: sel")).toBe(RuleErrorCode.BAD_REGEX);
  });
  it('cased makes the comparison case-sensitive', () => {
    expect(matches("sel:\n  CommandLine|cased: 'Abc'\ncondition: sel", { CommandLine: 'abc' })).toBe(false);
    expect(matches("sel:\n  CommandLine|contains|cased: 'Abc'\ncondition: sel", { CommandLine: 'xAbcx' })).toBe(true);
  });
  it('exists checks presence, ignoring the value, and stands alone', () => {
    expect(matches('sel:\n  Ticket|exists: true\ncondition: sel', { Ticket: '' })).toBe(true);
    expect(matches('sel:\n  Ticket|exists: false\ncondition: sel', { Image: 'x' })).toBe(true);
    expect(matches('sel:\n  Ticket|exists: true\ncondition: sel', { Image: 'x' })).toBe(false);
    expect(errorOf('sel:\n  Ticket|exists|contains: true\ncondition: sel')).toBe(RuleErrorCode.MODIFIER_ORDER);
  });
  it('cidr matches IPv4 and IPv6 networks and refuses host bits', () => {
    expect(matches("sel:\n  SourceIp|cidr: '10.0.0.0/8'\ncondition: sel", { SourceIp: '10.1.2.3' })).toBe(true);
    expect(matches("sel:\n  SourceIp|cidr: '10.0.0.0/8'\ncondition: sel", { SourceIp: '11.1.2.3' })).toBe(false);
    expect(matches("sel:\n  SourceIp|cidr: '10.0.0.0/8'\ncondition: sel", { SourceIp: '::ffff:10.1.2.3' })).toBe(true);
    expect(matches("sel:\n  SourceIp|cidr: 'fd00::/8'\ncondition: sel", { SourceIp: 'fd12::1' })).toBe(true);
    expect(matches("sel:\n  SourceIp|cidr: 'fd00::/8'\ncondition: sel", { SourceIp: 'not an ip' })).toBe(false);
    expect(errorOf("sel:\n  SourceIp|cidr: '1.2.3.4/24'\ncondition: sel")).toBe(RuleErrorCode.BAD_CIDR);
    expect(errorOf("sel:\n  SourceIp|cidr: 'x/8'\ncondition: sel")).toBe(RuleErrorCode.BAD_CIDR);
  });
  it('base64 encodes the whole value, padding included, and refuses wildcards', () => {
    expect(matches("sel:\n  CommandLine|base64: 'hello'\ncondition: sel", { CommandLine: 'aGVsbG8=' })).toBe(true);
    expect(matches("sel:\n  CommandLine|base64|contains: 'hello'\ncondition: sel", { CommandLine: 'echo aGVsbG8= | base64 -d' })).toBe(true);
    expect(errorOf("sel:\n  CommandLine|base64: 'hel*'\ncondition: sel")).toBe(RuleErrorCode.BAD_VALUE);
  });
  it('base64offset finds the value at each of the three offsets', () => {
    const d = "sel:\n  CommandLine|base64offset|contains: 'http://'\ncondition: sel";
    for (const prefix of ['', 'a', 'ab']) {
      const encoded = Buffer.from(`${prefix}http://example`).toString('base64');
      expect(matches(d, { CommandLine: `x ${encoded} y` })).toBe(true);
    }
    expect(matches(d, { CommandLine: Buffer.from('ftp://example').toString('base64') })).toBe(false);
  });
  it('wide and utf16 variants encode as UTF-16 before base64', () => {
    const le = Buffer.from('ping', 'utf16le').toString('base64');
    expect(matches("sel:\n  CommandLine|wide|base64: 'ping'\ncondition: sel", { CommandLine: le })).toBe(true);
    expect(matches("sel:\n  CommandLine|utf16le|base64: 'ping'\ncondition: sel", { CommandLine: le })).toBe(true);
    const be = Buffer.from('ping', 'utf16le').swap16().toString('base64');
    expect(matches("sel:\n  CommandLine|utf16be|base64: 'ping'\ncondition: sel", { CommandLine: be })).toBe(true);
    const bom = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('ping', 'utf16le')]).toString('base64');
    expect(matches("sel:\n  CommandLine|utf16|base64: 'ping'\ncondition: sel", { CommandLine: bom })).toBe(true);
  });
  it('windash tries every dash for a flag, even under all', () => {
    const d = "sel:\n  CommandLine|windash|contains|all:\n    - ' -enc '\n    - ' -nop'\ncondition: sel";
    expect(matches(d, { CommandLine: 'powershell /nop \u2013enc AAA' })).toBe(true);
    expect(matches(d, { CommandLine: 'powershell /nop xenc AAA' })).toBe(false);
  });
  it('gt, gte, lt, lte compare numbers and refuse a quoted value', () => {
    expect(matches('sel:\n  DurationSeconds|gt: 3600\ncondition: sel', { DurationSeconds: 3601 })).toBe(true);
    expect(matches('sel:\n  DurationSeconds|gt: 3600\ncondition: sel', { DurationSeconds: 3600 })).toBe(false);
    expect(matches('sel:\n  DurationSeconds|gte: 3600\ncondition: sel', { DurationSeconds: '3600' })).toBe(true);
    expect(matches('sel:\n  DurationSeconds|lt: 10\ncondition: sel', { DurationSeconds: 9.5 })).toBe(true);
    expect(matches('sel:\n  DurationSeconds|lte: 10\ncondition: sel', { DurationSeconds: 'x' })).toBe(false);
    expect(errorOf("sel:\n  DurationSeconds|gt: '3600'\ncondition: sel")).toBe(RuleErrorCode.BAD_VALUE);
  });
  it('neq negates the whole item, so it is true when the field is absent', () => {
    const d = "sel:\n  User|neq:\n    - 'root'\n    - 'admin'\ncondition: sel";
    expect(matches(d, { User: 'bob' })).toBe(true);
    expect(matches(d, { User: 'ROOT' })).toBe(false);
    expect(matches(d, { Image: '/x' })).toBe(true);
  });
  it('fieldref compares with another field, alone or with contains/startswith/endswith', () => {
    expect(matches("sel:\n  User|fieldref: 'TargetUser'\ncondition: sel", { User: 'Bob', TargetUser: 'bob' })).toBe(true);
    expect(matches("sel:\n  CommandLine|fieldref|contains: 'User'\ncondition: sel", { CommandLine: 'su bob -c', User: 'bob' })).toBe(true);
    expect(matches("sel:\n  CommandLine|fieldref|endswith: 'User'\ncondition: sel", { CommandLine: 'su bob -c', User: 'bob' })).toBe(false);
    expect(matches("sel:\n  User|fieldref: 'TargetUser'\ncondition: sel", { User: 'bob' })).toBe(false);
    expect(errorOf("sel:\n  User|fieldref: 'Target*'\ncondition: sel")).toBe(RuleErrorCode.BAD_VALUE);
  });
  it('expand refuses a placeholder it cannot resolve', () => {
    expect(errorOf("sel:\n  User|expand: '%admins%'\ncondition: sel")).toBe(RuleErrorCode.UNRESOLVED_PLACEHOLDER);
  });
  it('minute … year compare one part of a date field', () => {
    const t = { StartTime: '2026-11-28T03:15:30Z' };
    expect(matches('sel:\n  StartTime|hour: 3\ncondition: sel', t)).toBe(true);
    expect(matches('sel:\n  StartTime|minute: 15\ncondition: sel', t)).toBe(true);
    expect(matches('sel:\n  StartTime|day: 28\ncondition: sel', t)).toBe(true);
    expect(matches('sel:\n  StartTime|week: 48\ncondition: sel', t)).toBe(true);
    expect(matches('sel:\n  StartTime|month: 11\ncondition: sel', t)).toBe(true);
    expect(matches('sel:\n  StartTime|year: 2025\ncondition: sel', t)).toBe(false);
  });
  it('refuses an unknown modifier', () => {
    expect(errorOf("sel:\n  Image|endwith: 'x'\ncondition: sel")).toBe(RuleErrorCode.BAD_MODIFIER);
  });
});

describe('§4 conditions', () => {
  const d = (condition: string) => `a:\n  A: '1'\nb:\n  B: '1'\nc:\n  C: '1'\nsel_x:\n  X: '1'\nsel_y:\n  Y: '1'\n_hidden:\n  H: '1'\ncondition: ${condition}`;
  it('binds or loosest, then and, then not', () => {
    expect(matches(d('a or b and c'), { A: '1' })).toBe(true);
    expect(matches(d('(a or b) and c'), { A: '1' })).toBe(false);
    expect(matches(d('not a and b'), { B: '1' })).toBe(true);
    expect(matches(d('not (a and b)'), { A: '1', B: '1' })).toBe(false);
    expect(matches(d('not not a'), { A: '1' })).toBe(true);
  });
  it('1 of / any of / all of a pattern, with * the only wildcard and whole-name matching', () => {
    expect(matches(d('1 of sel_*'), { Y: '1' })).toBe(true);
    expect(matches(d('any of sel_*'), { Y: '1' })).toBe(true);
    expect(matches(d('all of sel_*'), { Y: '1' })).toBe(false);
    expect(matches(d('all of sel_*'), { X: '1', Y: '1' })).toBe(true);
    // `sel` is not `sel_x`: a pattern must match whole names, and one that matches none is refused.
    expect(errorOf(d('1 of sel'))).toBe(RuleErrorCode.UNKNOWN_IDENTIFIER);
  });
  it('them is every identifier but those starting with _, unless the pattern does', () => {
    expect(matches(d('1 of them'), { H: '1' })).toBe(false);
    expect(matches(d('1 of _*'), { H: '1' })).toBe(true);
    expect(matches(d('all of them'), { A: '1', B: '1', C: '1', X: '1', Y: '1' })).toBe(true);
  });
  it('not 1 of filter_* means no filter matches', () => {
    expect(matches(d('a and not 1 of sel_*'), { A: '1' })).toBe(true);
    expect(matches(d('a and not 1 of sel_*'), { A: '1', X: '1' })).toBe(false);
  });
  it('ORs a list of conditions', () => {
    expect(matches('a:\n  A: 1\nb:\n  B: 1\ncondition:\n  - a\n  - b', { B: 1 })).toBe(true);
  });
  it('refuses upper-case operators, undefined identifiers, aggregations and stray text', () => {
    expect(errorOf(d('a OR b'))).toBe(RuleErrorCode.BAD_CONDITION);
    expect(errorOf(d('a or zz'))).toBe(RuleErrorCode.UNKNOWN_IDENTIFIER);
    expect(errorOf(d('1 of nothing_*'))).toBe(RuleErrorCode.UNKNOWN_IDENTIFIER);
    expect(errorOf(d('a | count() > 5'))).toBe(RuleErrorCode.AGGREGATION);
    expect(errorOf(d('(a or b'))).toBe(RuleErrorCode.BAD_CONDITION);
    expect(errorOf(d('a b'))).toBe(RuleErrorCode.BAD_CONDITION);
  });
});

describe('regular expressions cannot hang the engine', () => {
  it('runs the classic catastrophic pattern over a long hostile value in linear time', () => {
    const { engine, errors } = ruleFrom("sel:\n  CommandLine|re: '^(a+)+$'\ncondition: sel");
    expect(errors).toEqual([]);
    const hostile = `${'a'.repeat(50_000)}!`;
    const started = performance.now();
    const alerts = engine.evaluate({ id: 'e', time: '2026-11-28T00:00:00Z', category: 'process_creation', product: 'linux', fields: { CommandLine: hostile } });
    expect(alerts).toEqual([]);
    // A backtracking engine needs longer than the age of the universe for this input; RE2 needs a
    // linear pass. The bound is loose so a busy machine cannot fail it.
    expect(performance.now() - started).toBeLessThan(5_000);
  });
  it('keeps wildcard patterns linear too', () => {
    const { engine } = ruleFrom("sel:\n  CommandLine: '*a*a*a*a*a*a*a*b'\ncondition: sel");
    const started = performance.now();
    expect(engine.evaluate({ id: 'e', time: '2026-11-28T00:00:00Z', category: 'process_creation', product: 'linux', fields: { CommandLine: 'a'.repeat(30_000) } })).toEqual([]);
    expect(performance.now() - started).toBeLessThan(5_000);
  });
});
