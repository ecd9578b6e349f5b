// The process sensor: scans /proc on a timer and reports process_creation / process_termination.
// Other sensors that reason about processes (sessions) listen to each scan before events go out.
import type { Logger } from '../../log/index.ts';
import type { ProcessCreation, ProcessTermination } from '../../../collector/protocol/index.ts';
import type { Emit, Sensor, SensorHealth } from '../types.ts';
import { ProcessTable, type ProcEntry, type ProcessTableOptions, type ScanResult } from './table.ts';
import { periodic } from '../periodic.ts';
import { processGuid } from './guid.ts';

export { ProcessTable, type ProcEntry, type ScanResult } from './table.ts';

/** Called after every scan, before its events are emitted, so listeners can update what they track. */
export type ScanListener = (result: ScanResult, table: ProcessTable) => void;

/** Finds the remote session a process belongs to; supplied by enrichment at wiring time. */
export type Attribute = (entry: ProcEntry, table: ProcessTable) => string | undefined;

export interface ProcessSensorOptions {
  hostId: string;
  logger: Logger;
  /** A process living this long or longer is always seen: the scan period. */
  scanIntervalMs?: number;
  procRoot?: string;
  passwdPath?: string;
  maxCommandLineChars?: number;
  readLink?: ProcessTableOptions['readLink'];
}

export interface ProcessSensor extends Sensor {
  readonly table: ProcessTable;
  onScan(listener: ScanListener): void;
  setAttribution(attribute: Attribute): void;
  /** Runs one scan now; the timer calls this too. */
  scanOnce(): void;
}

export function createProcessSensor({
  hostId, logger, scanIntervalMs = 100, procRoot = '/proc', passwdPath = '/etc/passwd', maxCommandLineChars, readLink,
}: ProcessSensorOptions): ProcessSensor {
  const table = new ProcessTable({
    procRoot, passwdPath, ...(maxCommandLineChars ? { maxCommandLineChars } : {}), ...(readLink ? { readLink } : {}),
  });
  const listeners: ScanListener[] = [];
  const privileged = process.getuid?.() === 0;
  let attribute: Attribute = () => undefined;
  let emit: Emit | undefined;
  let scanErrors = 0;
  let listenerErrors = 0;
  let lastError: string | undefined;

  function sessionOf(entry: ProcEntry): string | undefined {
    if (entry.sessionId === undefined) entry.sessionId = attribute(entry, table) ?? null;
    return entry.sessionId ?? undefined;
  }

  function scanOnce(): void {
    let result: ScanResult;
    try {
      result = table.scan();
    } catch (error) {
      // Only the /proc listing itself can fail here; per-process errors are counted inside.
      scanErrors++;
      lastError = (error as Error).message;
      logger.error({ err: error, procRoot }, 'process scan failed');
      return;
    }
    for (const listener of listeners) {
      try {
        listener(result, table);
      } catch (error) {
        // A listener's bug must not stop process events; it is counted and shows in health.
        listenerErrors++;
        lastError = (error as Error).message;
        logger.error({ err: error }, 'a scan listener failed');
      }
    }
    if (!emit) return;
    for (const entry of result.created) {
      if (entry.kernelThread) continue;
      emit({ category: 'process_creation', timeMs: entry.startTimeMs, fields: creationFields(entry, table, hostId, sessionOf(entry)) });
    }
    // An exec seen late is a process_creation of the new program, as Linux audit reports each execve.
    for (const entry of result.execed) {
      emit({ category: 'process_creation', timeMs: entry.readAtMs, fields: creationFields(entry, table, hostId, sessionOf(entry)) });
    }
    const now = Date.now();
    for (const entry of result.exited) {
      if (entry.kernelThread) continue;
      emit({ category: 'process_termination', timeMs: now, fields: terminationFields(entry, hostId, now, sessionOf(entry)) });
    }
  }

  const timer = periodic(scanOnce, scanIntervalMs, (error) => {
    // Emitting failed downstream: counted and shown in health; the next scan still runs.
    scanErrors++;
    lastError = (error as Error).message;
    logger.error({ err: error }, 'process scan failed');
  });

  return {
    name: 'processes',
    table,
    onScan(listener) {
      listeners.push(listener);
    },
    setAttribution(fn) {
      attribute = fn;
    },
    scanOnce,
    async start(target) {
      // The first scan is the baseline: processes already running are known (so their children get
      // parent fields) but are not reported as created.
      scanOnce();
      emit = target;
      for (const entry of table.entries()) sessionOf(entry);
      if (!privileged) {
        logger.warn({ uid: process.getuid?.() }, 'not running as root: executable paths, working directories and environments of other users\' processes cannot be read');
      }
      timer.start();
    },
    async stop() {
      timer.stop();
      emit = undefined;
    },
    health(): SensorHealth {
      const counters = { ...table.counters, scanErrors, listenerErrors, processes: table.size };
      if ((scanErrors > 0 || listenerErrors > 0) && lastError) {
        return { name: 'processes', state: 'degraded', source: procRoot, reason: `a scan failed: ${lastError}`, counters };
      }
      if (!privileged) {
        return {
          name: 'processes', state: 'degraded', source: procRoot, counters,
          reason: `running as uid ${process.getuid?.()}, not root: Image, CurrentDirectory and environment of other users' processes are not readable (${table.counters.permissionDenied} reads refused); run the agent as root`,
        };
      }
      return { name: 'processes', state: 'ok', source: procRoot, counters };
    },
  };
}

export function creationFields(entry: ProcEntry, table: ProcessTable, hostId: string, sessionId: string | undefined): ProcessCreation {
  const parent = table.get(entry.ppid);
  const knownParent = parent && parent.startTimeMs <= entry.startTimeMs ? parent : undefined;
  const fields: ProcessCreation = {
    ProcessId: entry.pid,
    ProcessGuid: processGuid(hostId, entry.pid, entry.startTimeMs),
    Image: entry.image,
    CommandLine: entry.commandLine,
    ParentProcessId: entry.ppid,
    StartTime: new Date(entry.startTimeMs).toISOString(),
  };
  if (entry.commandLineTruncated) fields.CommandLineTruncated = true;
  if (entry.user !== undefined) fields.User = entry.user;
  else if (entry.uid !== undefined) fields.User = String(entry.uid);
  if (entry.cwd !== undefined) fields.CurrentDirectory = entry.cwd;
  if (entry.tty !== undefined) fields.Tty = entry.tty;
  if (knownParent) {
    fields.ParentProcessGuid = processGuid(hostId, knownParent.pid, knownParent.startTimeMs);
    fields.ParentImage = knownParent.image;
    fields.ParentCommandLine = knownParent.commandLine;
  }
  if (sessionId !== undefined) fields.SessionId = sessionId;
  return fields;
}

function terminationFields(entry: ProcEntry, hostId: string, nowMs: number, sessionId: string | undefined): ProcessTermination {
  const fields: ProcessTermination = {
    ProcessId: entry.pid,
    ProcessGuid: processGuid(hostId, entry.pid, entry.startTimeMs),
    Image: entry.image,
    CommandLine: entry.commandLine,
    ParentProcessId: entry.ppid,
    DurationSeconds: Math.max(0, (nowMs - entry.startTimeMs) / 1000),
  };
  if (entry.user !== undefined) fields.User = entry.user;
  if (sessionId !== undefined) fields.SessionId = sessionId;
  return fields;
}
