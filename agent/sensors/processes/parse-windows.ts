// Pure mapping of the process list that `systeminformation` (v5) `si.processes()` returns on Windows
// into `ProcessInfo`. Total: entries it cannot read are counted in `skipped`, never thrown.
import type { ProcessInfo } from '../types.ts';

/**
 * What a Windows parser returns: the records it could read, and how many it could not (an input
 * that is not an array at all counts as one).
 */
export interface ParsedSiProcesses {
  entries: ProcessInfo[];
  skipped: number;
}

export interface ParseSiWindowsOptions {
  /**
   * The offset from UTC, in minutes east, of the wall-clock time in `started`. When absent the
   * host's own time zone (with its daylight-saving rules) is used, which is what the agent wants;
   * tests pass a fixed offset so they do not depend on the machine's zone.
   */
  utcOffsetMinutes?: number;
}

/*
 * On Windows, systeminformation 5.x (lib/processes.js) runs
 *   Get-CimInstance Win32_Process | Select-Object ProcessId,ParentProcessId,Caption,CommandLine,
 *     ExecutablePath,…,@{n="CreationDate";e={$_.CreationDate.ToString("yyyy-MM-dd HH:mm:ss")}}
 * and builds each entry as
 *   pid ← ProcessId, parentPid ← ParentProcessId, name ← Caption,
 *   command ← CommandLine || Caption, path ← ExecutablePath, params ← '',
 *   started ← CreationDate (local wall clock, no zone), user ← '' (never filled on Windows).
 * CommandLine and ExecutablePath are null for processes the caller may not open (System, Registry,
 * Memory Compression; more without admin rights), so `command` then holds just the image name.
 * CreationDate is null for the System Idle Process (pid 0), which therefore has no start time.
 */
export function parseSiWindowsProcesses(list: unknown, options: ParseSiWindowsOptions = {}): ParsedSiProcesses {
  if (!Array.isArray(list)) return { entries: [], skipped: 1 };
  const entries: ProcessInfo[] = [];
  let skipped = 0;
  for (const item of list) {
    const info = toProcessInfo(item, options);
    if (info === undefined) skipped += 1;
    else entries.push(info);
  }
  return { entries, skipped };
}

function toProcessInfo(item: unknown, options: ParseSiWindowsOptions): ProcessInfo | undefined {
  if (typeof item !== 'object' || item === null) return undefined;
  const record = item as Record<string, unknown>;
  const pid = record['pid'];
  const ppid = record['parentPid'];
  const name = record['name'];
  if (!isPid(pid) || !isPid(ppid) || typeof name !== 'string' || name === '') return undefined;
  const startTimeMs = parseStarted(record['started'], options.utcOffsetMinutes);
  // pid + start time is a process's identity; without a start time the entry cannot be tracked.
  if (startTimeMs === undefined) return undefined;
  const path = record['path'];
  const command = record['command'];
  const user = record['user'];
  return {
    pid,
    ppid,
    startTimeMs,
    name,
    image: typeof path === 'string' ? path : '',
    commandLine: typeof command === 'string' ? command : '',
    ...(typeof user === 'string' && user !== '' ? { user } : {}),
  };
}

function isPid(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** `YYYY-MM-DD HH:MM:SS` (also with `T`) as local wall-clock time → ms since the epoch. */
function parseStarted(value: unknown, utcOffsetMinutes: number | undefined): number | undefined {
  if (typeof value !== 'string') return undefined;
  const m = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})$/.exec(value.trim());
  if (m === null) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1).map(Number) as [number, number, number, number, number, number];
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59) return undefined;
  const asUtc = Date.UTC(year, month - 1, day, hour, minute, second);
  // Date.UTC rolls 2023-02-30 over into March; a date that does not round-trip is not a date.
  if (new Date(asUtc).getUTCDate() !== day) return undefined;
  if (utcOffsetMinutes !== undefined) {
    return Number.isFinite(utcOffsetMinutes) ? asUtc - utcOffsetMinutes * 60_000 : undefined;
  }
  return new Date(year, month - 1, day, hour, minute, second).getTime();
}
