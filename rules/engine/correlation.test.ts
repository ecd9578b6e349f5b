// Correlation rules, traced to sigma-semantics.md §5: each type, group-by, the sliding window,
// aliases, generate, chaining, and the bounds on state.
import { describe, expect, it } from 'vitest';
import { CorrelationState, parseCorrelation } from './correlation.ts';
import { loadRules, RuleEngine, RuleErrorCode, type Alert } from './index.ts';

const failedLogin = `title: Failed SSH login
id: failed-login
name: failed_login
author: omwatch
logsource: {category: auth, product: linux}
detection:
  sel: {Outcome: failure}
  condition: sel
`;
const okLogin = `title: SSH login
id: ok-login
name: ok_login
author: omwatch
logsource: {category: auth, product: linux}
detection:
  sel: {Outcome: success}
  condition: sel
`;

function engineOf(...docs: string[]): RuleEngine {
  const loaded = loadRules([{ file: 'c.yml', text: docs.join('---\n') }]);
  expect(loaded.errors).toEqual([]);
  return new RuleEngine(loaded);
}

let seq = 0;
function feed(engine: RuleEngine, second: number, fields: Record<string, unknown>): readonly Alert[] {
  const time = new Date(Date.UTC(2026, 10, 28, 10, 0, 0) + second * 1000).toISOString();
  return engine.evaluate({ id: `e${++seq}`, time, category: 'auth', product: 'linux', fields });
}

const titles = (alerts: readonly Alert[]) => alerts.map((a) => a.rule.title);

describe('event_count', () => {
  const correlation = `title: Many failed logins
id: brute
author: omwatch
level: high
correlation:
  type: event_count
  rules: [failed_login]
  group-by: [SourceIp]
  timespan: 1m
  condition: {gte: 3}
`;
  it('fires when the count in a sliding window reaches the condition, per group, and silences the base rule', () => {
    const engine = engineOf(failedLogin, correlation);
    expect(feed(engine, 0, { Outcome: 'failure', SourceIp: '10.0.0.1' })).toEqual([]);
    expect(feed(engine, 10, { Outcome: 'failure', SourceIp: '10.0.0.2' })).toEqual([]);
    expect(feed(engine, 20, { Outcome: 'failure', SourceIp: '10.0.0.1' })).toEqual([]);
    const fired = feed(engine, 30, { Outcome: 'failure', SourceIp: '10.0.0.1' });
    expect(titles(fired)).toEqual(['Many failed logins']);
    // The three failures from 10.0.0.1 (first, third and fourth event fed), not the one from .2.
    expect(fired[0]).toMatchObject({ rule: { id: 'brute', level: 'high', author: 'omwatch' }, eventIds: [`e${seq - 3}`, `e${seq - 1}`, `e${seq}`] });
  });
  it('slides: events older than the timespan no longer count', () => {
    const engine = engineOf(failedLogin, correlation);
    feed(engine, 0, { Outcome: 'failure', SourceIp: '10.0.0.1' });
    feed(engine, 50, { Outcome: 'failure', SourceIp: '10.0.0.1' });
    expect(feed(engine, 70, { Outcome: 'failure', SourceIp: '10.0.0.1' })).toEqual([]);
    expect(titles(feed(engine, 80, { Outcome: 'failure', SourceIp: '10.0.0.1' }))).toEqual(['Many failed logins']);
  });
  it('with generate: true, the base rule alerts too', () => {
    const engine = engineOf(failedLogin, correlation.replace('  condition:', '  generate: true\n  condition:'));
    expect(titles(feed(engine, 0, { Outcome: 'failure', SourceIp: '10.0.0.1' }))).toEqual(['Failed SSH login']);
  });
});

describe('value_count', () => {
  it('counts distinct values of a field per group', () => {
    const engine = engineOf(failedLogin, `title: Password spraying
id: spray
correlation:
  type: value_count
  rules: [failed-login]
  group-by: [SourceIp]
  timespan: 5m
  condition: {gte: 3, field: User}
`);
    feed(engine, 0, { Outcome: 'failure', SourceIp: '10.0.0.1', User: 'a' });
    feed(engine, 1, { Outcome: 'failure', SourceIp: '10.0.0.1', User: 'a' });
    expect(feed(engine, 2, { Outcome: 'failure', SourceIp: '10.0.0.1', User: 'b' })).toEqual([]);
    expect(titles(feed(engine, 3, { Outcome: 'failure', SourceIp: '10.0.0.1', User: 'c' }))).toEqual(['Password spraying']);
  });
});

describe('temporal and temporal_ordered', () => {
  const temporal = (type: string) => `title: Failures then success
id: fail-then-ok
correlation:
  type: ${type}
  rules: [failed_login, ok_login]
  group-by: [User]
  timespan: 10m
`;
  it('temporal: every rule matched in the window for the group, in any order', () => {
    const engine = engineOf(failedLogin, okLogin, temporal('temporal'));
    expect(feed(engine, 0, { Outcome: 'success', User: 'vendor1' })).toEqual([]);
    expect(feed(engine, 5, { Outcome: 'failure', User: 'someone-else' })).toEqual([]);
    expect(titles(feed(engine, 10, { Outcome: 'failure', User: 'vendor1' }))).toEqual(['Failures then success']);
  });
  it('temporal_ordered: only in the order listed', () => {
    const engine = engineOf(failedLogin, okLogin, temporal('temporal_ordered'));
    expect(feed(engine, 0, { Outcome: 'success', User: 'vendor1' })).toEqual([]);
    expect(feed(engine, 10, { Outcome: 'failure', User: 'vendor1' })).toEqual([]);
    expect(titles(feed(engine, 20, { Outcome: 'success', User: 'vendor1' }))).toEqual(['Failures then success']);
  });
  it('temporal: the window slides past an old match', () => {
    const engine = engineOf(failedLogin, okLogin, temporal('temporal'));
    feed(engine, 0, { Outcome: 'failure', User: 'vendor1' });
    expect(feed(engine, 700, { Outcome: 'success', User: 'vendor1' })).toEqual([]);
  });
});

describe('aliases and chaining', () => {
  it('joins different field names across rules through an alias', () => {
    const net = `title: Inbound
id: inbound
name: inbound
logsource: {category: auth, product: linux}
detection:
  sel: {Kind: conn}
  condition: sel
`;
    const engine = engineOf(net, okLogin, `title: Connection then login from it
id: conn-login
correlation:
  type: temporal
  rules: [inbound, ok_login]
  group-by: [ip]
  timespan: 1m
  aliases:
    ip:
      inbound: DestinationIp
      ok_login: SourceIp
`);
    expect(feed(engine, 0, { Kind: 'conn', DestinationIp: '10.9.9.9' })).toEqual([]);
    expect(feed(engine, 1, { Outcome: 'success', SourceIp: '10.1.1.1' })).toEqual([]);
    expect(titles(feed(engine, 2, { Outcome: 'success', SourceIp: '10.9.9.9' }))).toEqual(['Connection then login from it']);
  });
  it('a correlation can feed another', () => {
    const engine = engineOf(failedLogin, `title: Burst
id: burst
name: burst
correlation: {type: event_count, rules: [failed_login], group-by: [User], timespan: 1m, condition: {gte: 2}}
`, `title: Repeated bursts
id: bursts
correlation: {type: event_count, rules: [burst], group-by: [User], timespan: 10m, condition: {gte: 2}}
`);
    feed(engine, 0, { Outcome: 'failure', User: 'u' });
    expect(feed(engine, 1, { Outcome: 'failure', User: 'u' })).toEqual([]);
    feed(engine, 2, { Outcome: 'failure', User: 'u' });
    expect(titles(feed(engine, 3, { Outcome: 'failure', User: 'u' }))).toEqual(['Repeated bursts']);
  });
});

describe('loading', () => {
  it('refuses malformed correlations with a code, and ones naming rules that are not loaded', () => {
    const bad = (correlation: string) => loadRules([{ file: 'c.yml', text: `${failedLogin}---\ntitle: c\nid: c1\ncorrelation: ${correlation}\n` }]).errors.map((e) => e.code);
    expect(bad('{type: event_count, rules: [failed_login], timespan: 1m}')).toEqual([RuleErrorCode.BAD_CORRELATION]);
    expect(bad('{type: sums, rules: [failed_login], timespan: 1m, condition: {gte: 1}}')).toEqual([RuleErrorCode.BAD_CORRELATION]);
    expect(bad('{type: event_count, rules: [failed_login], timespan: soon, condition: {gte: 1}}')).toEqual([RuleErrorCode.BAD_CORRELATION]);
    expect(bad('{type: event_count, rules: [failed_login], timespan: 1m, condition: {gte: 1, lte: 5}}')).toEqual([RuleErrorCode.BAD_CORRELATION]);
    expect(bad('{type: event_count, rules: [failed_login], timespan: 1m, condition: {lt: 5}}')).toEqual([RuleErrorCode.BAD_CORRELATION]);
    expect(bad('{type: value_count, rules: [failed_login], timespan: 1m, condition: {gte: 5}}')).toEqual([RuleErrorCode.BAD_CORRELATION]);
    expect(bad('{type: event_count, rules: [nothing], timespan: 1m, condition: {gte: 1}}')).toEqual([RuleErrorCode.BAD_CORRELATION]);
    expect(bad('{type: event_count, rules: [failed_login], timespan: 2h, condition: {gte: 1}}')).toEqual([]);
  });
});

describe('bounded state', () => {
  it('keeps at most the cap of groups, evicting the least recently used and counting it', () => {
    const rule = parseCorrelation({ title: 'c', id: 'c', correlation: { type: 'event_count', rules: ['r'], 'group-by': ['SourceIp'], timespan: '1h', condition: { gte: 5 } } }, { file: 'x', line: 1 });
    const state = new CorrelationState(rule, 100);
    for (let i = 0; i < 1_000; i++) state.add({ ref: 'r', keys: ['r'], eventIds: [`e${i}`], timeMs: i, fields: { SourceIp: `10.0.${i >> 8}.${i & 255}` } });
    expect(state.counters.groups).toBe(100);
    expect(state.counters.evictedGroups).toBe(900);
  });
  it('expires groups whose window has passed', () => {
    const rule = parseCorrelation({ title: 'c', id: 'c', correlation: { type: 'event_count', rules: ['r'], 'group-by': ['SourceIp'], timespan: '1s', condition: { gte: 5 } } }, { file: 'x', line: 1 });
    const state = new CorrelationState(rule);
    for (let i = 0; i < 50; i++) state.add({ ref: 'r', keys: ['r'], eventIds: [`e${i}`], timeMs: 0, fields: { SourceIp: String(i) } });
    state.add({ ref: 'r', keys: ['r'], eventIds: ['late'], timeMs: 10_000, fields: { SourceIp: 'x' } });
    expect(state.counters).toMatchObject({ groups: 1, expiredGroups: 50 });
  });
});
