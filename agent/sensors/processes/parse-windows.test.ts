// Golden tests for the systeminformation (Windows) process mapping: every fixtures/input/windows-*.json
// (a `si.processes().list` array, see fixtures/SOURCES.md) is mapped and compared with fixtures/output/
// (OMWATCH_UPDATE_FIXTURES=1 rewrites them after a reviewed change).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { goldenFixtures } from '../../../test/helpers/golden.ts';
import { parseSiWindowsProcesses } from './parse-windows.ts';

// The fixtures' wall-clock times are taken as CET so the expected ms do not depend on the host zone.
const CET = { utcOffsetMinutes: 60 };

goldenFixtures({
  fixtures: new URL('./fixtures/', import.meta.url),
  match: /^windows-.*\.json$/,
  parse: (path) => parseSiWindowsProcesses(JSON.parse(readFileSync(path, 'utf8')) as unknown, CET),
});

const entry = {
  pid: 7712,
  parentPid: 7044,
  name: 'powershell.exe',
  started: '2024-03-14 09:45:30',
  user: '',
  command: 'powershell.exe -NoProfile -File C:\\Temp\\a.ps1',
  path: 'C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe',
  params: '',
};

describe('parseSiWindowsProcesses', () => {
  it('maps path to image and command to commandLine, and leaves out the empty user', () => {
    expect(parseSiWindowsProcesses([entry], CET)).toEqual({
      entries: [
        {
          pid: 7712,
          ppid: 7044,
          startTimeMs: Date.UTC(2024, 2, 14, 8, 45, 30),
          name: 'powershell.exe',
          image: 'C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe',
          commandLine: 'powershell.exe -NoProfile -File C:\\Temp\\a.ps1',
        },
      ],
      skipped: 0,
    });
  });

  it("reads `started` in the host's time zone when no offset is given", () => {
    const [info] = parseSiWindowsProcesses([entry]).entries;
    expect(info?.startTimeMs).toBe(new Date(2024, 2, 14, 9, 45, 30).getTime());
  });

  it('skips the System Idle Process, which has no creation date', () => {
    const idle = { ...entry, pid: 0, parentPid: 0, name: 'System Idle Process', started: null, path: null };
    expect(parseSiWindowsProcesses([idle, entry], CET)).toMatchObject({ skipped: 1, entries: [{ pid: 7712 }] });
  });

  it('gives an empty image and command line when Windows withheld them', () => {
    const [info] = parseSiWindowsProcesses([{ ...entry, command: null, path: null }], CET).entries;
    expect(info).toMatchObject({ image: '', commandLine: '' });
  });

  it('counts a non-array input as one skip and never throws', () => {
    expect(parseSiWindowsProcesses(undefined)).toEqual({ entries: [], skipped: 1 });
    expect(parseSiWindowsProcesses({ list: [entry] })).toEqual({ entries: [], skipped: 1 });
    expect(parseSiWindowsProcesses('[]')).toEqual({ entries: [], skipped: 1 });
    expect(parseSiWindowsProcesses([])).toEqual({ entries: [], skipped: 0 });
  });

  it('skips a start time given with a non-finite offset rather than emitting NaN', () => {
    expect(parseSiWindowsProcesses([entry], { utcOffsetMinutes: Number.NaN })).toEqual({ entries: [], skipped: 1 });
  });
});
