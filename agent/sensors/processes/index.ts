// The process sensor: reports process_creation / process_termination (and, from the kernel's process
// events connector, process_privilege_change). Two sources feed one process table:
// - connector: the kernel announces every fork, exec, uid change and exit (native/proc-connector reads
//   each new program's details the moment its exec arrives); used as root on Linux when the addon loads;
// - scan: /proc read on a timer; a process living less than the interval may be missed.
// Other sensors that reason about processes (sessions) listen to each change set before events go out.
import type { Logger } from '../../log/index.ts';
import type { ProcessCreation, ProcessPrivilegeChange, ProcessTermination } from '../../../collector/protocol/index.ts';
import type { Emit, Sensor, SensorHealth } from '../types.ts';
import { ATTRIBUTION_ENV_KEYS, ProcessTable, type ProcEntry, type ProcessTableOptions, type ScanResult } from './table.ts';
import { periodic } from '../periodic.ts';
import { processGuid } from './guid.ts';
import { loadConnector, openConnector, type Connector, type ConnectorOpenOptions } from './connector.ts';
import { decodeBatch, decodeExitStatus, type ConnectorRecord, type ExitRecord, type ExitStatus, type UidRecord } from './connector-decode.ts';

export { ProcessTable, type ProcEntry, type ScanResult } from './table.ts';

/** Called after every scan (or connector batch), before its events are emitted, so listeners can update what they track. */
export type ScanListener = (result: ScanResult, table: ProcessTable) => void;

/** Finds the remote session a process belongs to; supplied by enrichment at wiring time. */
export type Attribute = (entry: ProcEntry, table: ProcessTable) => string | undefined;

/** `auto`: the connector where it can be opened, else the scan. `scan`: the scan only. */
export type ProcessSource = 'auto' | 'scan';

export interface ProcessSensorOptions {
  hostId: string;
  logger: Logger;
  /** Scan source: a process living this long or longer is always seen. Connector source: how often time-based work runs. */
  scanIntervalMs?: number;
  procRoot?: string;
  passwdPath?: string;
  maxCommandLineChars?: number;
  readLink?: ProcessTableOptions['readLink'];
  source?: ProcessSource;
  /** The connector addon (a packaged agent points here); default: OMWATCH_PROC_CONNECTOR, else the build's. */
  connectorPath?: string;
  /** The addon's bounds and batching (tests make them small). */
  connector?: ConnectorOpenOptions;
}

export interface ProcessSensor extends Sensor {
  readonly table: ProcessTable;
  /** Which source is live (after start): `connector` or `scan`. */
  readonly source: 'connector' | 'scan';
  onScan(listener: ScanListener): void;
  setAttribution(attribute: Attribute): void;
  /** Runs one scan now; the timer calls this too (scan source), and a resync after lost events. */
  scanOnce(): void;
}

/** How long a new sshd process's title is re-read (a login's [priv] → user → user@pts/N). */
const SSHD_TITLE_WATCH_MS = 30_000;

/**
 * How long the addon gathers events before handing them over: each hand-over has a fixed cost (a
 * wake-up of Node's loop, a pass over the batch), so bench:exec measured 2.1× less of Node's CPU per
 * exec at 100 ms than at 10 ms. Alerts wait at most this long more.
 */
const DEFAULT_BATCH_MS = 100;

/**
 * A setuid program's exec follows the kernel's word of its new user within one execve() call: a user
 * change this far behind the stream with no exec after it was the running program's own.
 */
const SETUID_EXEC_MS = 50;
/** How long a user change waits for that at most, by the wall clock, when no batch comes. */
const PENDING_CHANGE_MAX_MS = 1_000;

/** How many exits of never-exec'd forks are remembered (see recentExits). */
const RECENT_EXITS = 1_024;

/** How each kind of loss is counted, coded and told. */
const LOSSES = {
  overflow: { counter: 'overflows', code: 'CONNECTOR_ENOBUFS', message: () => 'the kernel\'s process events socket overflowed (ENOBUFS): events were lost; the process table is read again from /proc' },
  dropped: { counter: 'queueDropped', code: 'CONNECTOR_QUEUE_FULL', message: (count: number) => `${count} process events dropped: the agent fell behind the connector's bounded queue; the process table is read again from /proc` },
  error: { counter: 'readErrors', code: 'CONNECTOR_RECV', message: (count: number) => `reading process events failed: errno ${count}` },
  relisten: { counter: 'relistens', code: 'CONNECTOR_SILENCED', message: () => 'the kernel had stopped announcing process events (its count of listeners fell to zero); listening again, and the process table is read again from /proc' },
} as const satisfies Record<string, { counter: keyof ConnectorCounters; code: string; message: (count: number) => string }>;

/** Counters of the connector source, in health. */
interface ConnectorCounters {
  batches: number;
  execs: number;
  /** Execs whose process had exited before its details could be read: reported with pid, parent and time. */
  exitedBeforeRead: number;
  forks: number;
  /** Forks that exited without an exec before their creation was due: not reported, like a scan would miss them. */
  forkOnlyExited: number;
  exits: number;
  privilegeChanges: number;
  /** Exits and uid changes of processes the table did not know (threads' leaders gone, events lost). */
  unknownPids: number;
  /** The kernel's socket buffer filled (ENOBUFS): events were lost; a /proc rescan followed. */
  overflows: number;
  /** The addon's queue was full (JS fell behind): records were dropped; a /proc rescan followed. */
  queueDropped: number;
  /** The kernel had stopped announcing events to us and a new socket listened again; a /proc rescan followed. */
  relistens: number;
  /** Uid changes that were a setuid program's exec (the exec's, not a privilege change). */
  setuidExecs: number;
  resyncs: number;
  malformedBatches: number;
  readErrors: number;
}

export function createProcessSensor({
  hostId, logger, scanIntervalMs = 100, procRoot = '/proc', passwdPath = '/etc/passwd', maxCommandLineChars, readLink,
  source = 'auto', connectorPath, connector: connectorOptions,
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
  let connector: Connector | undefined;
  /** Why the scan is the source: chosen, or what kept the connector from opening. */
  let whyScan: string | undefined;
  let connectorFailed = false;
  /** Forks waiting for an exec; their creation is due a scan interval after the fork. */
  let pendingForks: ProcEntry[] = [];
  /** sshd's processes (and when first seen), whose titles are re-read every interval for a while. */
  let sshdTitles: Array<[ProcEntry, number]> = [];
  /**
   * Exits of forks that had not exec'd, with their entry, newest last, bounded: an exec read after its
   * exit (the exit came in the batch before) finds it here.
   */
  const recentExits = new Map<number, { exit: ExitRecord; entry: ProcEntry }>();
  /**
   * Changes of the effective user alone that ended a batch: a setuid program's exec may follow in the
   * next one (see isSetuidExec). The table has taken the change; its event waits, a batch interval at most.
   */
  const pendingChanges = new Map<number, { sinceMs: number; bootMs: number; emit: () => void }>();
  /** Records newer than their batch's cut (see CutRecord), held for the next batch, and since when. */
  let heldRecords: ConnectorRecord[] = [];
  let heldSinceMs = 0;
  const batchMs = connectorOptions?.batchMs ?? DEFAULT_BATCH_MS;
  const cn: ConnectorCounters = {
    batches: 0, execs: 0, exitedBeforeRead: 0, forks: 0, forkOnlyExited: 0, exits: 0, privilegeChanges: 0,
    unknownPids: 0, overflows: 0, queueDropped: 0, relistens: 0, setuidExecs: 0, resyncs: 0, malformedBatches: 0, readErrors: 0,
  };

  function sessionOf(entry: ProcEntry): string | undefined {
    if (entry.sessionId === undefined) entry.sessionId = attribute(entry, table) ?? null;
    return entry.sessionId ?? undefined;
  }

  function runListeners(result: ScanResult): void {
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
  }

  function emitCreation(entry: ProcEntry, timeMs: number): void {
    if (!emit || entry.kernelThread) return;
    emit({ category: 'process_creation', timeMs, fields: creationFields(entry, table, hostId, sessionOf(entry)) });
  }

  /**
   * Connector source: the creation as the process is now (a later event of the batch may change it),
   * emitted once the batch's listeners ran, with its session then.
   */
  function creationLater(entry: ProcEntry, timeMs: number): () => void {
    if (entry.kernelThread) return () => {};
    let fields = creationFields(entry, table, hostId, undefined);
    return () => {
      if (!emit) return;
      // Exited before it could be read, its parent unknown then: its fork or exit, later in the batch, told it.
      if (fields.ParentProcessId === 0 && entry.ppid !== 0) fields = creationFields(entry, table, hostId, undefined);
      const sessionId = sessionOf(entry);
      if (sessionId !== undefined) fields.SessionId = sessionId;
      emit({ category: 'process_creation', timeMs, fields });
    };
  }

  /** `bootMs`: the exit on the boot clock, which the start ticks count on (the wall clock's boot time is whole seconds). */
  function emitTermination(entry: ProcEntry, timeMs: number, status?: ExitStatus, bootMs?: number): void {
    if (!emit || entry.kernelThread) return;
    const fields = terminationFields(entry, hostId, timeMs, sessionOf(entry), status);
    if (bootMs !== undefined && entry.startTicks > 0) fields.DurationSeconds = Math.max(0, (bootMs - entry.startTicks * 10) / 1000);
    emit({ category: 'process_termination', timeMs, fields });
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
    runListeners(result);
    if (!emit) return;
    for (const entry of result.created) emitCreation(entry, entry.startTimeMs);
    // An exec seen late is a process_creation of the new program, as Linux audit reports each execve.
    for (const entry of result.execed) emitCreation(entry, entry.readAtMs);
    const now = Date.now();
    for (const entry of result.exited) {
      // A fork the connector was still holding back was never reported: nor is its end.
      if (!entry.forkOnly) emitTermination(entry, now);
    }
  }

  /**
   * A running process changed user: the table takes it now; what it returns reports it (after the
   * creation of a forked child that had not been reported yet).
   */
  function userChanged(entry: ProcEntry, realUid: number, effectiveUid: number, timeMs: number): () => void {
    cn.privilegeChanges++;
    const steps: Array<() => void> = [];
    if (entry.forkOnly) {
      // A forked child changing user (su's, sudo's) is a process worth reporting before its change.
      delete entry.forkOnly;
      steps.push(creationLater(entry, entry.startTimeMs));
    }
    const before = { ...entry };
    setUid(entry, effectiveUid, table);
    entry.realUid = realUid;
    const after = { ...entry };
    steps.push(() => {
      if (!emit || entry.kernelThread) return;
      emit({ category: 'process_privilege_change', timeMs, fields: privilegeChangeFields(before, after, table, hostId, sessionOf(entry)) });
    });
    return () => {
      for (const step of steps) step();
    };
  }

  /**
   * Reads an sshd process's title again; a changed one is listed as retitled, with its audit session
   * and users read again too. The login set them meanwhile without an exec, and the kernel's word on
   * the users may still be on its way (its batch comes up to batchMs later): a session must not start
   * with the user sshd had before. A changed user is reported from here; the kernel's word, when it
   * comes, then changes nothing.
   */
  function retitle(entry: ProcEntry, result: ScanResult, out: Array<() => void>): void {
    if (!table.refreshTitle(entry)) return;
    table.refreshAuditSession(entry);
    const uids = table.readUids(entry);
    // Only while it runs the program the table holds: after an exec (a setuid program) the kernel's
    // records tell what changed, and how.
    if (uids && (uids.effective !== entry.uid || uids.real !== entry.realUid) && table.runs(entry)) {
      out.push(userChanged(entry, uids.real, uids.effective, Date.now()));
    }
    if (!result.retitled.includes(entry)) result.retitled.push(entry);
  }

  /**
   * sshd retitles its processes without an exec (`sshd: user [priv]`, `sshd: user@pts/0`) and the
   * sessions sensor reads those titles; a scan reads them all at one moment, the connector knows only
   * what was true at each event. So when a process of sshd's (or a child of one) comes or changes,
   * its sshd parent's and grandparent's titles are read now, and a changed one is listed as retitled.
   */
  function refreshSshdTitles(entries: ProcEntry[], result: ScanResult, out: Array<() => void>): void {
    for (const entry of entries) {
      if (entry.name.startsWith('sshd') && !sshdTitles.some(([known]) => known === entry)) sshdTitles.push([entry, Date.now()]);
    }
    const done = new Set<ProcEntry>();
    const refresh = (entry: ProcEntry) => {
      if (done.has(entry)) return;
      done.add(entry);
      retitle(entry, result, out);
    };
    for (const entry of entries) {
      const parent = table.get(entry.ppid);
      if (!parent || !parent.name.startsWith('sshd')) continue;
      if (entry.forkOnly) refresh(entry);
      refresh(parent);
      const grandparent = table.get(parent.ppid);
      if (grandparent?.name.startsWith('sshd')) refresh(grandparent);
    }
  }

  /** One batch from the connector: the table follows the kernel's events; listeners, then events, in event order. */
  function applyBatch(records: readonly ConnectorRecord[], cutBootMs?: number): void {
    const nowMs = Date.now();
    const result: ScanResult = { created: [], exited: [], execed: [], retitled: [] };
    // Emitted after the listeners ran (a session is registered before its processes are attributed),
    // and before exited entries leave the table (attribution walks through a parent that just exited).
    const out: Array<() => void> = [];
    let resync = false;

    const retire = (entry: ProcEntry, timeMs: number) => {
      // A process whose exit we never saw (events lost): its pid was taken by a new one.
      entry.exitedAtMs = timeMs;
      result.exited.push(entry);
      table.counters.pidReused++;
      if (!entry.forkOnly) out.push(() => emitTermination(entry, timeMs));
    };

    for (let index = 0; index < records.length; index++) {
      const record = records[index]!;
      const pid = 'pid' in record ? record.pid : undefined;
      const pendingChange = pid === undefined ? undefined : pendingChanges.get(pid);
      if (pid !== undefined && pendingChange && record.kind !== 'exec') {
        // The process's next event is not an exec: its user change was its own, reported now, in order.
        pendingChanges.delete(pid);
        out.push(pendingChange.emit);
      }
      switch (record.kind) {
        case 'fork': {
          cn.forks++;
          const known = table.get(record.pid);
          if (known && !known.exitedAtMs) {
            if (known.startTicks >= record.startTicks - 1 || (known.execBootMs ?? 0) >= record.bootMs) {
              // Read already (the baseline scan, or its exec came first): only what the exec could not read.
              fillIn(known, record.ppid, record.startTicks, table);
              break;
            }
            retire(known, record.timeMs);
          }
          const entry = table.fromFork(record.pid, record.ppid, record.startTicks, nowMs);
          table.put(entry);
          pendingForks.push(entry);
          result.created.push(entry);
          break;
        }
        case 'exec': {
          cn.execs++;
          const current = table.get(record.pid);
          const known = current && !current.exitedAtMs ? current : undefined;
          // Its exit came first (read in the batch before, this exec just after that batch was cut).
          const earlier = recentExits.get(record.pid);
          const endedFirst = !known && earlier && earlier.exit.bootMs >= record.bootMs ? earlier : undefined;
          const fresh = table.fromExec(record.pid, record, known ?? endedFirst?.entry, nowMs);
          fresh.execBootMs = record.bootMs;
          if (pendingChange) {
            // The user change just before was this setuid program's: no privilege change.
            pendingChanges.delete(record.pid);
            cn.privilegeChanges--;
            cn.setuidExecs++;
          }
          if (record.gone) {
            cn.exitedBeforeRead++;
            fresh.exitedBeforeRead = true;
          }
          if (known && Math.abs(fresh.startTicks - known.startTicks) <= 1) {
            // The same process runs a new program: the entry (which listeners may hold) takes it.
            const wasForkOnly = known.forkOnly === true;
            if (!wasForkOnly) {
              fresh.startTicks = known.startTicks;
              fresh.startTimeMs = known.startTimeMs;
            }
            const { sessionId } = known;
            replaceEntry(known, fresh);
            if (typeof sessionId === 'string') known.sessionId = sessionId;
            result.execed.push(known);
            out.push(creationLater(known, record.timeMs));
          } else {
            if (known) retire(known, record.timeMs);
            result.created.push(fresh);
            out.push(creationLater(fresh, record.timeMs));
            if (endedFirst) {
              // It ended, with that status.
              const { exit } = endedFirst;
              recentExits.delete(record.pid);
              fresh.exitedAtMs = exit.timeMs;
              result.exited.push(fresh);
              out.push(() => emitTermination(fresh, exit.timeMs, decodeExitStatus(exit.status), exit.bootMs));
            } else {
              table.put(fresh);
            }
          }
          break;
        }
        case 'uid': {
          const entry = table.get(record.pid);
          if (!entry || entry.exitedAtMs) {
            cn.unknownPids++;
            break;
          }
          if (entry.uid === record.effectiveUid && entry.realUid === record.realUid) break;
          const setuid = isSetuidExec(records, index, entry);
          if (setuid === 'yes') {
            // The kernel announces a setuid program's new effective user just before its exec: that
            // is the exec's (its creation shows the user), not a running program changing user.
            cn.setuidExecs++;
            setUid(entry, record.effectiveUid, table);
            break;
          }
          const report = userChanged(entry, record.realUid, record.effectiveUid, record.timeMs);
          // The batch ended before this process's next event: its exec may still come (a setuid program).
          if (setuid === 'maybe') pendingChanges.set(record.pid, { sinceMs: nowMs, bootMs: record.bootMs, emit: report });
          else out.push(report);
          break;
        }
        case 'cut':
          break;
        case 'sid': {
          // setsid() lets the controlling terminal go: the process and the children it forks from
          // now on have none, until its next exec reads what it has taken (a login's terminal).
          const entry = table.get(record.pid);
          if (entry && !entry.exitedAtMs) delete entry.tty;
          break;
        }
        case 'exit': {
          cn.exits++;
          const entry = table.get(record.pid);
          if (!entry || entry.exitedAtMs) {
            cn.unknownPids++;
            break;
          }
          entry.exitedAtMs = record.timeMs;
          fillIn(entry, record.ppid, undefined, table);
          result.exited.push(entry);
          if (entry.forkOnly) {
            cn.forkOnlyExited++;
            // Kept a while: an exec that raced ahead of its fork may still come, after this exit.
            recentExits.set(record.pid, { exit: record, entry });
            if (recentExits.size > RECENT_EXITS) recentExits.delete(recentExits.keys().next().value!);
            break;
          }
          const status = decodeExitStatus(record.status);
          out.push(() => emitTermination(entry, record.timeMs, status, record.bootMs));
          break;
        }
        case 'overflow':
        case 'dropped':
        case 'error':
        case 'relisten': {
          const { kind, count, timeMs } = record;
          const loss = LOSSES[kind];
          cn[loss.counter] += kind === 'relisten' ? 1 : count;
          if (kind === 'error') lastError = `reading the connector socket failed (errno ${count})`;
          else resync = true;
          if (record.final) {
            const reason = `the connector's reader stopped (errno ${count})`;
            // Not from inside the addon's callback, which closing it would tear down.
            setImmediate(() => fallBackToScan(reason));
          }
          const message = loss.message(count);
          logger.warn({ kind, count }, message);
          out.push(() => emit?.({
            category: 'agent', timeMs,
            fields: { Action: kind === 'error' ? 'sensor_error' : 'sensor_overflow', Sensor: 'processes', Code: loss.code, Count: count, Message: message },
          }));
          break;
        }
      }
    }
    if (cutBootMs !== undefined) {
      // The stream is complete well past these changes and no exec followed: they were the programs' own.
      for (const [pid, pending] of pendingChanges) {
        if (cutBootMs - pending.bootMs < SETUID_EXEC_MS) continue;
        pendingChanges.delete(pid);
        out.push(pending.emit);
      }
    }
    refreshSshdTitles([...result.created, ...result.execed], result, out);
    runListeners(result);
    for (const step of out) step();
    for (const entry of result.exited) table.remove(entry);
    if (resync) {
      // Back in step: pids the lost events would have told about are read, vanished ones ended.
      cn.resyncs++;
      scanOnce();
    }
  }

  /** Applies what the connector source still holds back: records past a cut, user changes awaiting an exec. */
  function flushHeld(): void {
    if (heldRecords.length > 0) take([]);
    for (const pending of pendingChanges.values()) pending.emit();
    pendingChanges.clear();
  }

  /** The connector failed for good after it opened: the scan takes over, and says why. */
  function fallBackToScan(reason: string): void {
    if (!connector) return;
    flushHeld();
    connector.close();
    connector = undefined;
    connectorFailed = true;
    whyScan = reason;
    logger.warn({ reason }, `process capture: scanning ${procRoot} every ${scanIntervalMs} ms from now on; the process events connector failed`);
    ticker.stop();
    if (emit) {
      scanOnce();
      timer.start();
    }
  }

  /**
   * Applies what is complete: held records and this batch, up to its cut; what comes after the cut is
   * held for the next batch (or applied by tick() if none comes).
   */
  function take(batch: readonly ConnectorRecord[]): void {
    const records = heldRecords.length > 0 ? [...heldRecords, ...batch].sort((a, b) => a.bootMs - b.bootMs) : batch;
    heldRecords = [];
    let cutBootMs: number | undefined;
    for (const record of batch) if (record.kind === 'cut') cutBootMs = Math.max(cutBootMs ?? record.bootMs, record.bootMs);
    let end = records.length;
    if (cutBootMs !== undefined) {
      while (end > 0 && records[end - 1]!.bootMs > cutBootMs) end--;
      if (end < records.length) {
        heldRecords = records.slice(end);
        heldSinceMs = Date.now();
      }
    }
    applyBatch(end < records.length ? records.slice(0, end) : records, cutBootMs);
  }

  function onBatch(data: Buffer): void {
    cn.batches++;
    // The boundary with the addon: a failure here is counted and shown in health, never thrown into N-API.
    try {
      const { records, malformed } = decodeBatch(data);
      if (malformed > 0) cn.malformedBatches++;
      take(records);
    } catch (error) {
      scanErrors++;
      lastError = (error as Error).message;
      logger.error({ err: error }, 'a process events batch failed');
    }
  }

  /** Connector source, every interval: forks that did not exec are reported, listeners do their timed work. */
  function tick(): void {
    const nowMs = Date.now();
    // No batch came after the held records: nothing they wait for is still to come.
    if (heldRecords.length > 0 && nowMs - heldSinceMs >= 3 * batchMs) take([]);
    // A user change long past with no exec after it, on a host too quiet for a batch to say so.
    for (const [pid, pending] of pendingChanges) {
      if (nowMs - pending.sinceMs < PENDING_CHANGE_MAX_MS) continue;
      pendingChanges.delete(pid);
      pending.emit();
    }
    const due: ProcEntry[] = [];
    const waiting: ProcEntry[] = [];
    for (const entry of pendingForks) {
      if (!entry.forkOnly || entry.exitedAtMs || table.get(entry.pid) !== entry) continue;
      // A fork's exec may come in the next batch: its creation waits for that too.
      if (nowMs - entry.readAtMs >= scanIntervalMs + batchMs) due.push(entry);
      else waiting.push(entry);
    }
    pendingForks = waiting;
    for (const entry of due) {
      delete entry.forkOnly;
      // What a scan would have read: a forked child may have set its own title (sshd does).
      table.refreshTitle(entry);
    }
    // Titles changed without an exec, as a scan would see them: the young processes' and a rotating
    // few older ones' (a changed program found here is left for its exec event to report). sshd's
    // processes are watched longer: they retitle themselves as a login proceeds, however slowly.
    const result: ScanResult = { created: [], exited: [], ...table.recheck(nowMs) };
    const watching: Array<[ProcEntry, number]> = [];
    const out: Array<() => void> = [];
    for (const [entry, sinceMs] of sshdTitles) {
      if (entry.exitedAtMs || table.get(entry.pid) !== entry || nowMs - sinceMs > SSHD_TITLE_WATCH_MS) continue;
      watching.push([entry, sinceMs]);
      retitle(entry, result, out);
    }
    sshdTitles = watching;
    refreshSshdTitles([...result.retitled], result, out);
    runListeners(result);
    for (const entry of due) emitCreation(entry, entry.startTimeMs);
    for (const step of out) step();
  }

  const onError = (error: unknown) => {
    // Emitting failed downstream: counted and shown in health; the next run still happens.
    scanErrors++;
    lastError = (error as Error).message;
    logger.error({ err: error }, 'process scan failed');
  };
  const timer = periodic(scanOnce, scanIntervalMs, onError);
  const ticker = periodic(tick, scanIntervalMs, onError);

  function openLive(): void {
    if (source === 'scan') {
      whyScan = 'the scan was chosen (source: scan)';
      return;
    }
    if (procRoot !== '/proc') {
      whyScan = `the process root is ${procRoot}, not /proc: the kernel's events would not match it`;
      return;
    }
    const loaded = loadConnector(connectorPath);
    if (!loaded.ok) {
      whyScan = loaded.reason;
      connectorFailed = true;
      return;
    }
    const opened = openConnector(loaded, {
      environKeys: [...ATTRIBUTION_ENV_KEYS],
      maxCommandLineBytes: maxCommandLineChars ?? 32_768,
      batchMs,
      ...connectorOptions,
    }, onBatch);
    if (!opened.ok) {
      whyScan = `${opened.code}: ${opened.reason}`;
      connectorFailed = true;
      return;
    }
    connector = opened.connector;
  }

  return {
    name: 'processes',
    table,
    get source() {
      return connector ? 'connector' : 'scan';
    },
    onScan(listener) {
      listeners.push(listener);
    },
    setAttribution(fn) {
      attribute = fn;
    },
    scanOnce,
    async start(target) {
      // The connector first: what starts during the baseline scan is then not missed.
      openLive();
      // The first scan is the baseline: processes already running are known (so their children get
      // parent fields) but are not reported as created.
      scanOnce();
      emit = target;
      for (const entry of table.entries()) sessionOf(entry);
      if (!privileged) {
        logger.warn({ uid: process.getuid?.() }, 'not running as root: executable paths, working directories and environments of other users\' processes cannot be read');
      }
      if (connector) {
        logger.info({ split: connector.stats().splitSockets === 1 }, 'process capture: the kernel\'s process events connector');
        ticker.start();
      } else {
        if (connectorFailed) logger.warn({ reason: whyScan }, `process capture: scanning ${procRoot} every ${scanIntervalMs} ms; the process events connector is unavailable`);
        timer.start();
      }
    },
    async stop() {
      timer.stop();
      ticker.stop();
      if (connector) flushHeld();
      connector?.close();
      emit = undefined;
    },
    health(): SensorHealth {
      const stats = connector?.stats();
      const counters: Record<string, number> = { ...table.counters, scanErrors, listenerErrors, processes: table.size };
      if (connector && stats) {
        Object.assign(counters, cn);
        // What the addon itself saw, before JS: messages read, and what it dropped.
        for (const [key, value] of Object.entries(stats)) counters[`addon${key[0]!.toUpperCase()}${key.slice(1)}`] = value;
      }
      const notes: string[] = connector
        ? [`kernel process events connector (netlink CN_IDX_PROC${stats?.splitSockets ? ', execs on their own socket' : ''}); each new program's details read from /proc at its exec`]
        : [`scanning ${procRoot} every ${scanIntervalMs} ms${whyScan ? `: ${whyScan}` : ''}`];
      const liveSource = connector ? 'connector' : 'scan';
      if ((scanErrors > 0 || listenerErrors > 0) && lastError) {
        return { name: 'processes', state: 'degraded', source: liveSource, reason: `a scan failed: ${lastError}`, notes, counters };
      }
      if (!privileged) {
        return {
          name: 'processes', state: 'degraded', source: liveSource, notes, counters,
          reason: `running as uid ${process.getuid?.()}, not root: Image, CurrentDirectory and environment of other users' processes are not readable (${table.counters.permissionDenied} reads refused), and processes living under ${scanIntervalMs} ms may be missed (no process events connector); run the agent as root`,
        };
      }
      if (connectorFailed) {
        return {
          name: 'processes', state: 'degraded', source: liveSource, notes, counters,
          reason: `processes living under ${scanIntervalMs} ms may be missed: the process events connector is unavailable (${whyScan})`,
        };
      }
      return { name: 'processes', state: 'ok', source: liveSource, notes, counters };
    },
  };
}

/**
 * Whether the uid change at `records[index]` is a setuid program's exec rather than a running program
 * changing user: the kernel announces the new effective user (the real one unchanged) during the
 * exec, just before the exec itself. `yes` when the process's next record in the batch is its exec,
 * `maybe` when the batch ends first (the exec may come in the next one), else `no`.
 */
function isSetuidExec(records: readonly ConnectorRecord[], index: number, entry: ProcEntry): 'yes' | 'maybe' | 'no' {
  const change = records[index] as UidRecord;
  if (entry.realUid !== undefined && change.realUid !== entry.realUid) return 'no';
  for (let i = index + 1; i < records.length; i++) {
    const next = records[i]!;
    if ('pid' in next && next.pid === change.pid) return next.kind === 'exec' ? 'yes' : 'no';
  }
  return 'maybe';
}

/** The entry's effective user is now `uid`. */
function setUid(entry: ProcEntry, uid: number, table: ProcessTable): void {
  entry.uid = uid;
  const user = table.userName(uid);
  if (user === undefined) delete entry.user;
  else entry.user = user;
}

/** The entry's ProcessGuid, hashed once per process (a creation, its children and its end all name it). */
function guidOf(entry: ProcEntry, hostId: string): string {
  if (entry.guid?.startTimeMs !== entry.startTimeMs || entry.guid.hostId !== hostId) {
    entry.guid = { hostId, startTimeMs: entry.startTimeMs, value: processGuid(hostId, entry.pid, entry.startTimeMs) };
  }
  return entry.guid.value;
}

/** An entry made from an exec whose process was gone gets its parent (and start) from its fork or exit. */
function fillIn(entry: ProcEntry, ppid: number, startTicks: number | undefined, table: ProcessTable): void {
  if (entry.ppid === 0 && ppid > 0) entry.ppid = ppid;
  if (entry.startTicks === 0 && startTicks !== undefined) {
    entry.startTicks = startTicks;
    entry.startTimeMs = table.startTimeMsOf(startTicks);
  }
}

/** Puts `fresh`'s content into `target`, dropping what `fresh` does not have (listeners keep `target`). */
function replaceEntry(target: ProcEntry, fresh: ProcEntry): void {
  for (const key of Object.keys(target) as Array<keyof ProcEntry>) {
    if (!(key in fresh)) delete target[key];
  }
  Object.assign(target, fresh);
}

/** The fields every event about a process starts with. */
function processIdentity(entry: ProcEntry, hostId: string): Pick<ProcessCreation, 'ProcessId' | 'ProcessGuid' | 'Image' | 'CommandLine' | 'ParentProcessId'> {
  return { ProcessId: entry.pid, ProcessGuid: guidOf(entry, hostId), Image: entry.image, CommandLine: entry.commandLine, ParentProcessId: entry.ppid };
}

/** The entry's parent, if the table holds it (and not a newer process that took its pid). */
function knownParentOf(entry: ProcEntry, table: ProcessTable): ProcEntry | undefined {
  const parent = table.get(entry.ppid);
  return parent && parent.startTimeMs <= entry.startTimeMs ? parent : undefined;
}

export function creationFields(entry: ProcEntry, table: ProcessTable, hostId: string, sessionId: string | undefined): ProcessCreation {
  const knownParent = knownParentOf(entry, table);
  const fields: ProcessCreation = { ...processIdentity(entry, hostId), StartTime: new Date(entry.startTimeMs).toISOString() };
  if (entry.commandLineTruncated) fields.CommandLineTruncated = true;
  if (entry.exitedBeforeRead) fields.ExitedBeforeRead = true;
  if (entry.user !== undefined) fields.User = entry.user;
  else if (entry.uid !== undefined) fields.User = String(entry.uid);
  if (entry.cwd !== undefined) fields.CurrentDirectory = entry.cwd;
  if (entry.tty !== undefined) fields.Tty = entry.tty;
  if (knownParent) {
    fields.ParentProcessGuid = guidOf(knownParent, hostId);
    fields.ParentImage = knownParent.image;
    fields.ParentCommandLine = knownParent.commandLine;
  }
  if (sessionId !== undefined) fields.SessionId = sessionId;
  return fields;
}

function terminationFields(entry: ProcEntry, hostId: string, nowMs: number, sessionId: string | undefined, status?: ExitStatus): ProcessTermination {
  const fields: ProcessTermination = { ...processIdentity(entry, hostId), DurationSeconds: Math.max(0, (nowMs - entry.startTimeMs) / 1000) };
  if (entry.user !== undefined) fields.User = entry.user;
  if (status) {
    fields.ExitCode = status.exitCode;
    if (status.signal !== undefined) fields.Signal = status.signal;
  }
  if (sessionId !== undefined) fields.SessionId = sessionId;
  return fields;
}

function userOf(entry: Pick<ProcEntry, 'user' | 'uid'>): string | undefined {
  return entry.user ?? (entry.uid === undefined ? undefined : String(entry.uid));
}

/** A running process took another user (setuid, su, sudo): who it was and who it is now. */
export function privilegeChangeFields(before: ProcEntry, after: ProcEntry, table: ProcessTable, hostId: string, sessionId: string | undefined): ProcessPrivilegeChange {
  const knownParent = knownParentOf(after, table);
  const fields: ProcessPrivilegeChange = processIdentity(after, hostId);
  const user = userOf(after);
  if (user !== undefined) fields.User = user;
  const previousUser = userOf(before);
  if (previousUser !== undefined) fields.PreviousUser = previousUser;
  const realUser = after.realUid === undefined ? undefined : table.userName(after.realUid) ?? String(after.realUid);
  if (realUser !== undefined) fields.RealUser = realUser;
  const previousRealUser = before.realUid === undefined ? undefined : table.userName(before.realUid) ?? String(before.realUid);
  if (previousRealUser !== undefined) fields.PreviousRealUser = previousRealUser;
  if (after.tty !== undefined) fields.Tty = after.tty;
  if (knownParent) {
    fields.ParentImage = knownParent.image;
    fields.ParentCommandLine = knownParent.commandLine;
  }
  if (sessionId !== undefined) fields.SessionId = sessionId;
  return fields;
}
