import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createCatalog } from '../sensors/sessions/catalog.ts';
import { SessionRegistry } from '../sensors/sessions/registry.ts';
import { createEnricher } from './index.ts';
import { parsePolicy, PolicyError, PolicyJudge, wallClock } from './policy.ts';

const example = parsePolicy(readFileSync(new URL('../../rules/policy.example.yml', import.meta.url), 'utf8'), 'policy.example.yml');
/** An instant given as wall-clock time in Shanghai (UTC+8, no DST). */
const shanghai = (local: string) => Date.parse(`${local}:00+08:00`);

describe('maintenance windows', () => {
  const hmi = new PolicyJudge(example, 'hmi-07');
  it('a weekly window past midnight covers the night from Saturday into Sunday, in its time zone', () => {
    expect(hmi.inMaintenanceWindow(shanghai('2026-11-28T23:30'))).toBe(true); // Saturday night
    expect(hmi.inMaintenanceWindow(shanghai('2026-11-29T05:59'))).toBe(true); // Sunday early
    expect(hmi.inMaintenanceWindow(shanghai('2026-11-29T06:00'))).toBe(false);
    expect(hmi.inMaintenanceWindow(shanghai('2026-11-28T21:59'))).toBe(false);
    expect(hmi.inMaintenanceWindow(shanghai('2026-11-27T23:30'))).toBe(false); // Friday night
  });
  it('a dated window, in local time', () => {
    expect(hmi.inMaintenanceWindow(shanghai('2026-12-02T12:00'))).toBe(true);
    expect(hmi.inMaintenanceWindow(shanghai('2026-12-03T18:00'))).toBe(false);
  });
  it('applies a window only to the hosts it names', () => {
    const eng = new PolicyJudge(example, 'eng-01');
    expect(eng.inMaintenanceWindow(shanghai('2026-11-28T23:30'))).toBe(true);
    expect(eng.inMaintenanceWindow(shanghai('2026-12-02T12:00'))).toBe(false);
    expect(new PolicyJudge(example, 'office-pc').inMaintenanceWindow(shanghai('2026-11-28T23:30'))).toBe(false);
  });
  it('reads wall clocks across time zones', () => {
    expect(wallClock(Date.parse('2026-11-28T15:30:00Z'), 'Asia/Shanghai')).toEqual({ day: 6, minutes: 23 * 60 + 30, local: '2026-11-28T23:30' });
    expect(wallClock(Date.parse('2026-07-01T12:00:00Z'), 'Europe/Berlin').minutes).toBe(14 * 60);
  });
});

describe('session verdicts', () => {
  const judge = new PolicyJudge(example, 'hmi-07');
  const at = shanghai('2026-11-28T23:30');
  it('approves what the policy lists and refuses the rest', () => {
    expect(judge.judge(at, { tool: 'sshd', sourceIp: '10.20.3.4', user: 'vendor1', ticket: 'CHG-123456' }, 60, true)).toEqual({
      InMaintenanceWindow: true, ToolApproved: true, SourceApproved: true, AccountApproved: true, TicketRequired: true, TicketValid: true, ExceedsMaxDuration: false,
    });
    expect(judge.judge(at, { tool: 'anydesk', sourceIp: '8.8.8.8', user: 'intruder', ticket: 'please' }, 5 * 3600, true)).toEqual({
      InMaintenanceWindow: true, ToolApproved: false, SourceApproved: false, AccountApproved: false, TicketRequired: true, TicketValid: false, ExceedsMaxDuration: true,
    });
  });
  it('treats a missing ticket as invalid only where one is required, and a lone address as a /32', () => {
    expect(judge.judge(at, {}, undefined, true)).toMatchObject({ TicketRequired: true, TicketValid: false });
    expect(judge.judge(at, { sourceIp: '192.168.5.10' }).SourceApproved).toBe(true);
    expect(judge.judge(at, { sourceIp: '192.168.5.11' }).SourceApproved).toBe(false);
    expect(judge.judge(at, { sourceIp: '::ffff:10.20.0.1' }).SourceApproved).toBe(true);
    const relaxed = new PolicyJudge(parsePolicy('ticket: {required: false}\n', 'p.yml'), 'h');
    expect(relaxed.judge(at, {}, undefined, true)).toMatchObject({ TicketRequired: false, TicketValid: true });
  });
  it('has no opinion on what the policy does not configure', () => {
    expect(new PolicyJudge(parsePolicy('{}', 'p.yml'), 'h').judge(at, { tool: 'anydesk', sourceIp: '1.2.3.4', user: 'x' })).toEqual({ InMaintenanceWindow: false });
  });
});

describe('a broken policy is refused as a whole, saying what and where', () => {
  it.each([
    ['maintenanceWindows:\n  - name: x\n    weekly: {days: [sat], start: "25:00", end: "06:00"}\n', 'maintenanceWindows.0.weekly.start'],
    ['maintenanceWindows:\n  - name: x\n', 'either weekly or dated'],
    ['timezone: Mars/Olympus\n', 'timezone: an IANA time zone'],
    ['approvedSources: ["10.0.0.0/33"]\n', 'approvedSources.0'],
    ['ticket: {pattern: "("}\n', 'ticket.pattern'],
    ['bogus: 1\n', "(top level): unknown key 'bogus'"],
    ['a: [\n', 'policy.yml:'],
  ])('%j', (text, expected) => {
    expect(() => parsePolicy(text, 'policy.yml')).toThrow(PolicyError);
    expect(() => parsePolicy(text, 'policy.yml')).toThrow(expected);
  });
});

describe('enrichment', () => {
  const registry = new SessionRegistry();
  registry.add({ id: 'ssh-1', protocol: 'ssh', tool: 'sshd', user: 'vendor1', sourceIp: '8.8.8.8', startTimeMs: 0 });
  const judge = new PolicyJudge(example, 'hmi-07');
  const enrich = createEnricher({ judge: () => judge, registry, catalog: createCatalog() });
  const at = shanghai('2026-11-29T10:00');
  it('judges a process by the session it belongs to', () => {
    const out = enrich({ category: 'process_creation', timeMs: at, fields: { ProcessId: 1, Image: '/usr/bin/sudo', CommandLine: 'sudo -i', ParentProcessId: 0, SessionId: 'ssh-1' } });
    expect(out.fields).toMatchObject({ SessionId: 'ssh-1', InMaintenanceWindow: false, ToolApproved: true, SourceApproved: false, AccountApproved: true, DuringRemoteSession: true });
    expect(out.fields).not.toHaveProperty('TicketRequired');
  });
  it('names a remote-access tool process and judges it', () => {
    const out = enrich({ category: 'process_creation', timeMs: at, fields: { ProcessId: 2, Image: '/opt/anydesk/anydesk', CommandLine: 'anydesk --service', ParentProcessId: 1 } });
    expect(out.fields).toMatchObject({ Tool: 'anydesk', ToolApproved: false });
  });
  it('judges a session event by its own fields, ticket included', () => {
    const out = enrich({ category: 'remote_session', timeMs: at, fields: { SessionId: 'ssh-2', Action: 'start', Protocol: 'ssh', Tool: 'sshd', User: 'vendor1', SourceIp: '10.20.0.5' } });
    expect(out.fields).toMatchObject({ ToolApproved: true, SourceApproved: true, AccountApproved: true, TicketRequired: true, TicketValid: false });
  });
  it('adds nothing but tool names when there is no policy', () => {
    const bare = createEnricher({ judge: () => undefined, registry: new SessionRegistry(), catalog: createCatalog() });
    const out = bare({ category: 'process_creation', timeMs: at, fields: { ProcessId: 1, Image: '/usr/bin/ls', CommandLine: 'ls', ParentProcessId: 0 } });
    expect(out.fields).toEqual({ ProcessId: 1, Image: '/usr/bin/ls', CommandLine: 'ls', ParentProcessId: 0 });
  });
});
