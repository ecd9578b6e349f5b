// O&M policy: maintenance windows, approved tools, sources and accounts, tickets, session length.
// Validated as a whole (a broken file is refused and the last good one stays); enrichment turns it
// into fields on each event (InMaintenanceWindow, ToolApproved, …) so rules can judge by them.
import ipaddr from 'ipaddr.js';
import { z } from 'zod';
import { parseSettings, readSettingsFile } from '../config/yaml-file.ts';
import { PolicyError } from '../errors.ts';

const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
const clock = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'a time of day like "22:00"');
const localDateTime = z.string().regex(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$/, 'a local date and time like "2026-12-01T08:00"');
const timeZone = z.string().refine((tz) => {
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: tz }).resolvedOptions().timeZone !== '';
  } catch {
    return false;
  }
}, 'an IANA time zone like "Asia/Shanghai"');
const cidr = z.string().refine((text) => {
  try {
    ipaddr.parseCIDR(text.includes('/') ? text : `${text}/${text.includes(':') ? 128 : 32}`);
    return true;
  } catch {
    return false;
  }
}, 'a network like "10.20.0.0/16" or an address');

const WindowSchema = z.strictObject({
  name: z.string().min(1),
  /** Host group names or host-name globs (`hmi-*`); all hosts when absent. */
  hosts: z.array(z.string().min(1)).optional(),
  timezone: timeZone.optional(),
  weekly: z.strictObject({ days: z.array(z.enum(DAYS)).min(1), start: clock, end: clock }).optional(),
  dated: z.strictObject({ start: localDateTime, end: localDateTime }).optional(),
}).refine((w) => (w.weekly === undefined) !== (w.dated === undefined), 'a window is either weekly or dated');

/** The recorded shell (`omwatch-agent shell`): its gate, recording and limits. */
export const ShellPolicySchema = z.strictObject({
  /** The agent daemon cannot be reached: refuse the shell (strict), or record to the spool (best effort). */
  whenDaemonDown: z.enum(['refuse', 'spool']).default('refuse'),
  /** A session the gate says no to (ticket missing or invalid, outside the windows): refused, or started flagged. */
  gate: z.enum(['refuse', 'flag']).default('refuse'),
  /** Only inside a maintenance window (with `gate`). */
  requireMaintenanceWindow: z.boolean().default(false),
  /** Record what is typed too (`i` events), though never what the terminal does not show back. */
  recordInput: z.boolean().default(false),
  /** No input for this long ends the session (after a warning). */
  idleMinutes: z.number().positive().optional(),
  /** Idle and length limits warn this long before they end a session. */
  warnBeforeSeconds: z.number().nonnegative().default(60),
  /** The recording cannot keep up (the outbox is near its cap): slow the session down, or end it. */
  onRecordingBehind: z.enum(['throttle', 'end']).default('throttle'),
  /**
   * Output the recording may trail what the user has seen by, in MiB (held in the agent's memory): past
   * it, `onRecordingBehind` applies. A flood of output is shown at the terminal's pace and recorded after.
   * All sessions together hold at most twice this (past it they wait, whatever the policy says).
   */
  maxRecordingLagMiB: z.number().int().min(1).max(1024).default(128),
  /** Whether the client may name the command to run (`-- cmd`, `-c cmd`, `ssh host cmd`) instead of the shell. */
  allowCommand: z.boolean().default(true),
  /** The shell the session runs; bash reports each command line (other shells: the recording only). */
  program: z.string().startsWith('/').default('/bin/bash'),
});
export type ShellPolicy = z.infer<typeof ShellPolicySchema>;

export const PolicySchema = z.strictObject({
  /** The time zone windows are written in, unless a window names its own. */
  timezone: timeZone.default('UTC'),
  hostGroups: z.record(z.string(), z.array(z.string().min(1))).default({}),
  maintenanceWindows: z.array(WindowSchema).default([]),
  /** Catalogue tool names (`sshd`, `anydesk`); absent means no opinion. */
  approvedTools: z.array(z.string().min(1)).optional(),
  approvedSources: z.array(cidr).optional(),
  approvedAccounts: z.array(z.string().min(1)).optional(),
  ticket: z.strictObject({ required: z.boolean().default(false), pattern: z.string().optional() }).prefault({}),
  maxSessionMinutes: z.number().positive().optional(),
  shell: ShellPolicySchema.prefault({}),
});

export type Policy = z.infer<typeof PolicySchema>;

export { PolicyError };

export function parsePolicy(text: string, source: string): Policy {
  const policy = parseSettings(text, source, PolicySchema, policyError);
  if (policy.ticket.pattern !== undefined) {
    try {
      RegExp(policy.ticket.pattern, 'u');
    } catch (error) {
      throw new PolicyError(`${source}: ticket.pattern: not a regular expression: ${(error as Error).message}`);
    }
  }
  return policy;
}

export function loadPolicy(path: string): Policy {
  return parsePolicy(readSettingsFile(path, 'policy file', policyError), path);
}

const policyError = (message: string) => new PolicyError(message);

/** What a session looks like to the policy: the facts its fields are judged by. */
export interface SessionFacts {
  tool?: string;
  sourceIp?: string;
  user?: string;
  ticket?: string;
}

export interface PolicyVerdict {
  InMaintenanceWindow: boolean;
  ToolApproved?: boolean;
  SourceApproved?: boolean;
  AccountApproved?: boolean;
  TicketRequired?: boolean;
  TicketValid?: boolean;
  ExceedsMaxDuration?: boolean;
}

/** A compiled policy for one host: pure judgements of times and session facts. */
export class PolicyJudge {
  readonly policy: Policy;
  readonly #windows: Array<(timeMs: number) => boolean>;
  readonly #sources: Array<[ipaddr.IPv4 | ipaddr.IPv6, number]> | undefined;
  readonly #ticket: RegExp | undefined;

  constructor(policy: Policy, hostName: string) {
    this.policy = policy;
    this.#windows = policy.maintenanceWindows
      .filter((w) => appliesTo(w.hosts, hostName, policy.hostGroups))
      .map((w) => windowTest(w, w.timezone ?? policy.timezone));
    this.#sources = policy.approvedSources?.map((text) => ipaddr.parseCIDR(text.includes('/') ? text : `${text}/${text.includes(':') ? 128 : 32}`));
    this.#ticket = policy.ticket.pattern === undefined ? undefined : new RegExp(policy.ticket.pattern, 'u');
  }

  inMaintenanceWindow(timeMs: number): boolean {
    return this.#windows.some((test) => test(timeMs));
  }

  /** `sessionEvent`: the event is the session itself (remote_session), so its ticket is judged too. */
  judge(timeMs: number, session: SessionFacts, durationSeconds?: number, sessionEvent = false): PolicyVerdict {
    const { policy } = this;
    const verdict: PolicyVerdict = { InMaintenanceWindow: this.inMaintenanceWindow(timeMs) };
    if (policy.approvedTools && session.tool !== undefined) verdict.ToolApproved = policy.approvedTools.includes(session.tool);
    if (this.#sources && session.sourceIp !== undefined) verdict.SourceApproved = this.#sourceApproved(session.sourceIp);
    if (policy.approvedAccounts && session.user !== undefined) verdict.AccountApproved = policy.approvedAccounts.includes(session.user);
    if (sessionEvent) {
      verdict.TicketRequired = policy.ticket.required;
      verdict.TicketValid = session.ticket === undefined ? !policy.ticket.required : (this.#ticket?.test(session.ticket) ?? true);
    }
    if (policy.maxSessionMinutes !== undefined && durationSeconds !== undefined) verdict.ExceedsMaxDuration = durationSeconds > policy.maxSessionMinutes * 60;
    return verdict;
  }

  #sourceApproved(text: string): boolean {
    if (!ipaddr.isValid(text)) return false;
    let ip = ipaddr.parse(text);
    if (ip.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress()) ip = (ip as ipaddr.IPv6).toIPv4Address();
    return this.#sources!.some((range) => range[0].kind() === ip.kind() && ip.match(range));
  }
}

function appliesTo(hosts: string[] | undefined, hostName: string, groups: Record<string, string[]>): boolean {
  if (!hosts) return true;
  const globs = hosts.flatMap((entry) => groups[entry] ?? [entry]);
  return globs.some((glob) => new RegExp(`^${glob.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`, 'i').test(hostName));
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** The wall clock in `tz` at an instant: weekday (0 = Sunday), minutes since midnight, and `YYYY-MM-DDTHH:MM`. */
export function wallClock(timeMs: number, tz: string): { day: number; minutes: number; local: string } {
  let format = formatters.get(tz);
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', { timeZone: tz, hourCycle: 'h23', weekday: 'short', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit' });
    formatters.set(tz, format);
  }
  const parts = Object.fromEntries(format.formatToParts(new Date(timeMs)).map((p) => [p.type, p.value]));
  const day = DAYS.indexOf(String(parts['weekday']).toLowerCase().slice(0, 3) as (typeof DAYS)[number]);
  const minutes = Number(parts['hour']) * 60 + Number(parts['minute']);
  return { day, minutes, local: `${parts['year']}-${parts['month']}-${parts['day']}T${parts['hour']}:${parts['minute']}` };
}

function windowTest(window: z.infer<typeof WindowSchema>, tz: string): (timeMs: number) => boolean {
  if (window.dated) {
    const { start, end } = window.dated;
    return (timeMs) => {
      const { local } = wallClock(timeMs, tz);
      return local >= start && local < end;
    };
  }
  const weekly = window.weekly!;
  const days = new Set(weekly.days.map((d) => DAYS.indexOf(d)));
  const start = toMinutes(weekly.start);
  const end = toMinutes(weekly.end);
  return (timeMs) => {
    const { day, minutes } = wallClock(timeMs, tz);
    if (end > start) return days.has(day) && minutes >= start && minutes < end;
    // A window past midnight (22:00–06:00) starts on a listed day and ends on the next.
    return (days.has(day) && minutes >= start) || (days.has((day + 6) % 7) && minutes < end);
  };
}

function toMinutes(time: string): number {
  const [h, m] = time.split(':').map(Number);
  return h! * 60 + m!;
}
