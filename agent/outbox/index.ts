// The agent's outbox on SQLite (design.md §5–§6): records queue in memory and are numbered, chained and
// written in one transaction per flush; rows leave once acked and old enough, or, declared, under the byte cap.
import { randomBytes } from 'node:crypto';
import { existsSync, renameSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { v7 as uuidv7 } from 'uuid';
import { GENESIS, sealRecord, type AgentFact } from '../../collector/protocol/index.ts';
import type { OpenedOutbox, Outbox, OutboxInput, OutboxOptions, OutboxStats, PendingRow } from './types.ts';

export type { OpenedOutbox, Outbox, OutboxInput, OutboxOptions, OutboxStats, PendingRow } from './types.ts';

/** Stable codes of what the outbox can refuse or fail at. */
export type OutboxErrorCode =
  /** The options are not usable (the message says which and what was expected). */
  | 'OUTBOX_OPTIONS'
  /** The file could not be opened (permissions, missing folder); a corrupt file is set aside instead. */
  | 'OUTBOX_OPEN_FAILED'
  /** The file was written by a newer omwatch: left as it is, not set aside. */
  | 'OUTBOX_SCHEMA'
  /** The disk is full (SQLITE_FULL): records stay queued, within a bound, until a write succeeds. */
  | 'OUTBOX_FULL'
  /** Any other write failure (SQLITE_IOERR, …): records stay queued likewise. */
  | 'OUTBOX_WRITE_FAILED'
  | 'OUTBOX_CLOSED';

export class OutboxError extends Error {
  override readonly name = 'OutboxError';
  readonly code: OutboxErrorCode;

  constructor(code: OutboxErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

export const DEFAULT_FLUSH_INTERVAL_MS = 20;
export const DEFAULT_MAX_QUEUED = 2_000;
/** Past `maxQueued × this`, while writes fail, the oldest plain events of the queue are dropped (and declared later). */
export const QUEUE_BOUND_FACTOR = 10;
/**
 * Once over the byte cap, rows go until the stored bytes are down to this share of it (and a queue past
 * its bound is cut to this share of the bound), so drops come in chunks, each declared once.
 */
export const LOW_WATER = 0.9;
const RETENTION_EVERY_MS = 1_000;
/** After a failed write, timer flushes retry this often (an explicit flush() always tries). */
const RETRY_AFTER_FAILURE_MS = 1_000;
/** A generous size of one buffer_dropped record, so one round of drops usually leaves room for its declarations. */
const DECLARATION_BYTES = 768;
const SCHEMA_VERSION = 2;
/** How often the checkpointer thread folds the WAL into the database. */
const CHECKPOINT_EVERY_MS = 1_000;
/** SQLite's own default, restored when the checkpointer thread is gone. */
const SQLITE_AUTOCHECKPOINT_PAGES = 1_000;
/** Older layouts this agent opens, upgrading them in place (migrate()). */
const READABLE_VERSIONS = new Set([1, SCHEMA_VERSION]);
const STREAM_ID = /^[A-Za-z0-9_-]{8,64}$/;

/** What each row holds: a plain event, an alert, or the outbox's own declaration (buffer_dropped, outbox_reset). */
type Kind = 'event' | 'alert' | 'declaration';
/** The byte cap drops unacked rows in this order: plain events first, declarations only when nothing else is left. */
const DROP_ORDER: readonly Kind[] = ['event', 'alert', 'declaration'];

/**
 * When each cumulative ack came: rows up to \`upto\` were acked at \`at\`. Kept apart from the rows, so an
 * ack writes one small row instead of rewriting every acked record (recording chunks are 64 KiB each).
 */
const ACKS_TABLE = 'CREATE TABLE acks (upto INTEGER PRIMARY KEY, at INTEGER NOT NULL);';

const SCHEMA = `
  CREATE TABLE meta (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    schema_version INTEGER NOT NULL,
    stream TEXT NOT NULL,
    acked_seq INTEGER NOT NULL,
    -- The newest seq and its hash as of the last transaction that deleted rows: the newest row says the
    -- same unless it was deleted, and keeping these here only then spares every flush a second page write.
    last_seq INTEGER NOT NULL,
    last_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );
  CREATE TABLE records (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('event', 'alert', 'declaration')),
    bytes INTEGER NOT NULL,
    json TEXT NOT NULL
  );
  ${ACKS_TABLE}
`;

interface Settings {
  path: string;
  maxBytes: number;
  retainAckedMs: number;
  flushIntervalMs: number;
  maxQueued: number;
  queueBound: number;
  host: { id: string; name: string };
  product: 'linux' | 'windows';
  now: () => number;
}

interface MetaRow {
  schema_version: number;
  stream: string;
  acked_seq: number;
  last_seq: number;
  last_hash: string;
}

/** A run of seqs gone under the byte cap: rows dropped now, and ranges declared by dropped declarations. */
interface Gone {
  from: number;
  to: number;
  /** Stored rows in it (dropped now), their bytes, how many were alerts. */
  rows: number;
  bytes: number;
  alerts: number;
  /** Seqs in it that earlier declarations, dropped now, had declared. */
  earlier: number;
  fromPrev?: string;
  toHash?: string;
}

/** A record sealed for writing. */
interface Sealed {
  seq: number;
  kind: Kind;
  bytes: number;
  json: string;
}

/** The outbox's counters as a flush transaction changes them; copied back only once it commits. */
interface Draft {
  seq: number;
  hash: string;
  rows: number;
  bytes: number;
  unacked: number;
  unackedBytes: number;
  ackedSeq: number;
  /** Rows dropped by the cap in this transaction (added to the count once it commits). */
  dropped: number;
  deleted: boolean;
  retentionAt: number;
}

/** Opens (or creates) the outbox at `options.path`; a corrupt file is set aside and a new stream begins. */
export function openOutbox(options: OutboxOptions): OpenedOutbox {
  const settings = settle(options);
  let reset: (OpenedOutbox['reset'] & { previousStream: string | undefined }) | undefined;
  let db: Database.Database;
  try {
    db = openDatabase(settings.path, settings.now());
  } catch (error) {
    if (!(error instanceof CorruptFile)) throw error;
    const movedTo = setAside(settings.path, settings.now());
    reset = { movedTo, reason: error.message, previousStream: error.previousStream };
    db = openDatabase(settings.path, settings.now());
  }
  const outbox = new SqliteOutbox(db, settings);
  if (!reset) return { outbox };
  // The first record of the new stream says why it began: the collector sees the old stream end here.
  outbox.declareReset(reset.reason, reset.movedTo, reset.previousStream);
  return { outbox, reset: { movedTo: reset.movedTo, reason: reset.reason } };
}

/**
 * Ends a stream the collector is ahead of (it holds seqs past this outbox's last: the file was restored
 * from a backup or a snapshot reverted): the outbox is closed, its file set aside as evidence, and a new
 * stream begins whose first record says why. Continuing the old stream would have the collector take
 * the new records for ones it already holds and drop them.
 */
export function restartStream(outbox: Outbox, options: OutboxOptions, reason: string): OpenedOutbox {
  const previousStream = outbox.stream;
  outbox.close();
  const settings = settle(options);
  const movedTo = setAside(settings.path, settings.now(), 'behind');
  const next = new SqliteOutbox(openDatabase(settings.path, settings.now()), settings);
  next.declareReset(reason, movedTo, previousStream);
  return { outbox: next, reset: { movedTo, reason } };
}

class SqliteOutbox implements Outbox {
  readonly stream: string;
  readonly #db: Database.Database;
  readonly #settings: Settings;
  readonly #sql: ReturnType<typeof statements>;
  #queue: OutboxInput[] = [];
  #lastSeq: number;
  #lastHash: string;
  #ackedSeq: number;
  #rows: number;
  #bytes: number;
  #unacked: number;
  #unackedBytes: number;
  #dropped = 0;
  /** Records lost before they had a seq (queue bound while writes fail, no JSON form), to be declared. */
  #unsequenced = { count: 0, reason: '' };
  /** An ack whose write failed, applied with the next flush. */
  #ackLater = 0;
  #retentionAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #writeError: NonNullable<OutboxStats['writeError']> | undefined;
  readonly #listeners: Array<(lastSeq: number) => void> = [];
  #closed = false;
  #checkpointer: Worker | undefined;

  constructor(db: Database.Database, settings: Settings) {
    this.#db = db;
    this.#settings = settings;
    this.#checkpointer = startCheckpointer(db, settings.path);
    this.#sql = statements(db);
    const meta = this.#sql.meta.get() as MetaRow;
    this.stream = meta.stream;
    this.#ackedSeq = meta.acked_seq;
    const newest = this.#sql.newest.get() as { seq: number; hash: string | null } | undefined;
    if (newest && newest.seq > meta.last_seq) {
      if (typeof newest.hash !== 'string') throw new OutboxError('OUTBOX_OPEN_FAILED', `outbox ${settings.path}: row ${newest.seq} has no hash`);
      this.#lastSeq = newest.seq;
      this.#lastHash = newest.hash;
    } else {
      this.#lastSeq = meta.last_seq;
      this.#lastHash = meta.last_hash;
    }
    const totals = this.#sql.totals.get() as { rows: number; bytes: number };
    this.#rows = totals.rows;
    this.#bytes = totals.bytes;
    const unacked = this.#sql.totalsAfter.get(this.#ackedSeq) as { rows: number; bytes: number };
    this.#unacked = unacked.rows;
    this.#unackedBytes = unacked.bytes;
  }

  append(record: OutboxInput): void {
    if (this.#closed) throw new OutboxError('OUTBOX_CLOSED', `outbox ${this.#settings.path} is closed: cannot append`);
    this.#queue.push(record);
    if (this.#queue.length < this.#settings.maxQueued) {
      this.#arm(this.#settings.flushIntervalMs);
    } else if (this.#writeError === undefined) {
      this.#flushQuietly();
    } else if (this.#queue.length >= this.#settings.queueBound) {
      this.#shed();
    }
  }

  flush(): number {
    if (this.#closed) throw new OutboxError('OUTBOX_CLOSED', `outbox ${this.#settings.path} is closed: cannot flush`);
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#queue.length === 0 && this.#unsequenced.count === 0 && this.#ackLater <= this.#ackedSeq) return this.#lastSeq;
    const now = this.#settings.now();
    const draft = this.#draft();
    const batch = this.#queue;
    const sealed: Sealed[] = [];
    let rejected: Set<OutboxInput> | undefined;
    for (const record of batch) {
      // A record with no canonical JSON form (NaN, a bigint, a cycle) is a bug upstream; it is dropped and
      // declared rather than left to block every record behind it.
      try {
        sealed.push(this.#seal(record, kindOf(record), draft));
      } catch (error) {
        (rejected ??= new Set()).add(record);
        this.#noteUnsequenced(1, `record ${nameOf(record)} has no canonical JSON form (${(error as Error).message})`);
      }
    }
    const unsequenced = this.#unsequenced.count;
    if (unsequenced > 0) {
      sealed.push(this.#seal(this.#agentEvent({
        Action: 'buffer_dropped', Count: unsequenced,
        Message: `${unsequenced} records dropped before they were written: ${this.#unsequenced.reason}`,
      }, now), 'declaration', draft));
    }
    try {
      this.#sql.transaction(() => this.#commit(sealed, draft, now));
    } catch (error) {
      if (rejected) this.#queue = batch.filter((record) => !rejected.has(record));
      const failure = this.#failed('flush', error, now);
      this.#arm(RETRY_AFTER_FAILURE_MS);
      throw failure;
    }
    this.#queue = [];
    this.#unsequenced = { count: 0, reason: '' };
    if (draft.ackedSeq >= this.#ackLater) this.#ackLater = 0;
    this.#writeError = undefined;
    this.#apply(draft);
    if (sealed.length > 0) for (const listener of this.#listeners) listener(this.#lastSeq);
    return this.#lastSeq;
  }

  pending(afterSeq: number, limit: number, maxBytes: number): PendingRow[] {
    if (this.#closed) throw new OutboxError('OUTBOX_CLOSED', `outbox ${this.#settings.path} is closed: cannot read`);
    const rows: PendingRow[] = [];
    if (!(limit >= 1)) return rows;
    let total = 0;
    for (const row of this.#sql.pending.iterate(Math.max(afterSeq, this.#ackedSeq), Math.floor(limit)) as IterableIterator<{ seq: number; bytes: number; json: string }>) {
      if (rows.length > 0 && total + row.bytes > maxBytes) break;
      rows.push({ seq: row.seq, json: row.json });
      total += row.bytes;
    }
    return rows;
  }

  ack(seq: number): void {
    if (this.#closed) throw new OutboxError('OUTBOX_CLOSED', `outbox ${this.#settings.path} is closed: cannot ack`);
    if (!Number.isSafeInteger(seq) || seq < 0) throw new RangeError(`ack: expected a non-negative integer seq, got ${seq}`);
    // An ack past what was written acks what was written: the collector cannot hold more of this stream.
    const upTo = Math.min(seq, this.#lastSeq);
    if (upTo <= this.#ackedSeq) return;
    const now = this.#settings.now();
    let marked = { rows: 0, bytes: 0 };
    try {
      this.#sql.transaction(() => {
        marked = this.#markAcked(upTo, now, this.#ackedSeq);
      });
    } catch (error) {
      // The collector holds these rows already; at worst they are sent again. The ack is retried with the
      // next flush, and the error shows in stats() meanwhile.
      this.#ackLater = Math.max(this.#ackLater, upTo);
      this.#failed('ack', error, now);
      this.#arm(RETRY_AFTER_FAILURE_MS);
      return;
    }
    this.#unacked -= marked.rows;
    this.#unackedBytes -= marked.bytes;
    this.#ackedSeq = upTo;
  }

  stats(): OutboxStats {
    return {
      rows: this.#rows, bytes: this.#bytes, unacked: this.#unacked, unackedBytes: this.#unackedBytes, lastSeq: this.#lastSeq, ackedSeq: this.#ackedSeq,
      dropped: this.#dropped, queued: this.#queue.length,
      ...(this.#writeError ? { writeError: { ...this.#writeError } } : {}),
    };
  }

  onFlush(listener: (lastSeq: number) => void): void {
    this.#listeners.push(listener);
  }

  close(): void {
    if (this.#closed) return;
    let failure: unknown;
    const queued = this.#queue.length;
    try {
      this.flush();
    } catch (error) {
      failure = error;
    }
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#closed = true;
    this.#checkpointer?.postMessage('stop');
    this.#db.close();
    if (failure !== undefined) {
      const code = failure instanceof OutboxError ? failure.code : 'OUTBOX_WRITE_FAILED';
      throw new OutboxError(code, `outbox ${this.#settings.path} closed with ${queued} records unwritten: ${(failure as Error).message}`, { cause: failure });
    }
  }

  /** Queues the first record of a stream that replaced a corrupt file, and writes it at once. */
  declareReset(reason: string, movedTo: string, previousStream: string | undefined): void {
    const fields: AgentFact = { Action: 'outbox_reset', Message: reason, Path: movedTo };
    if (previousStream !== undefined) fields.PreviousStream = previousStream;
    this.#queue.unshift(this.#agentEvent(fields, this.#settings.now()));
    this.#flushQuietly();
  }

  #draft(): Draft {
    return {
      seq: this.#lastSeq, hash: this.#lastHash, rows: this.#rows, bytes: this.#bytes, unacked: this.#unacked, unackedBytes: this.#unackedBytes,
      ackedSeq: this.#ackedSeq, dropped: 0, deleted: false, retentionAt: this.#retentionAt,
    };
  }

  #apply(draft: Draft): void {
    this.#lastSeq = draft.seq;
    this.#lastHash = draft.hash;
    this.#rows = draft.rows;
    this.#bytes = draft.bytes;
    this.#unacked = draft.unacked;
    this.#unackedBytes = draft.unackedBytes;
    this.#ackedSeq = draft.ackedSeq;
    this.#dropped += draft.dropped;
    this.#retentionAt = draft.retentionAt;
  }

  /** Numbers and chains one record after the draft's last one. */
  #seal(record: OutboxInput, kind: Kind, draft: Draft): Sealed {
    const seq = draft.seq + 1;
    const { hash, json } = sealRecord(record, { stream: this.stream, seq, prev: draft.hash });
    draft.seq = seq;
    draft.hash = hash;
    return { seq, kind, bytes: Buffer.byteLength(json), json };
  }

  /** The body of a flush transaction: the rows, a late ack, the byte cap, retention. */
  #commit(sealed: readonly Sealed[], draft: Draft, now: number): void {
    for (const row of sealed) this.#insert(row, draft);
    if (this.#ackLater > draft.ackedSeq) {
      const upTo = Math.min(this.#ackLater, draft.seq);
      const marked = this.#markAcked(upTo, now, draft.ackedSeq);
      draft.unacked -= marked.rows;
      draft.unackedBytes -= marked.bytes;
      draft.ackedSeq = upTo;
    }
    if (draft.bytes > this.#settings.maxBytes) this.#makeRoom(draft, now);
    if (now - draft.retentionAt >= RETENTION_EVERY_MS) this.#retain(draft, now);
    if (draft.deleted) this.#sql.setLast.run(draft.seq, draft.hash);
  }

  #insert(row: Sealed, draft: Draft): void {
    this.#sql.insert.run(row.seq, row.kind, row.bytes, row.json);
    draft.rows++;
    draft.bytes += row.bytes;
    draft.unacked++;
    draft.unackedBytes += row.bytes;
  }

  /** Marks rows up to `upTo` acked (inside a transaction); returns how many rows it marked, and their bytes. */
  #markAcked(upTo: number, now: number, from: number): { rows: number; bytes: number } {
    this.#sql.markAcked.run(upTo, now);
    this.#sql.setAcked.run(upTo);
    return this.#sql.totalsBetween.get(from, upTo) as { rows: number; bytes: number };
  }

  /**
   * Brings the stored bytes under the cap, down to LOW_WATER of it: acked rows first, oldest first; then
   * unacked plain events, oldest first; then alerts; then, only if nothing else is left, earlier
   * declarations. Every run of consecutive dropped seqs becomes one buffer_dropped record in the chain.
   */
  #makeRoom(draft: Draft, now: number): void {
    const { maxBytes } = this.#settings;
    const target = Math.floor(maxBytes * LOW_WATER);
    if (draft.ackedSeq > 0) {
      let freed = 0;
      let rows = 0;
      let upTo = 0;
      for (const row of this.#sql.ackedRows.iterate(draft.ackedSeq) as IterableIterator<{ seq: number; bytes: number }>) {
        if (draft.bytes - freed <= target) break;
        freed += row.bytes;
        rows++;
        upTo = row.seq;
      }
      if (rows > 0) {
        this.#sql.deleteUpTo.run(upTo);
        draft.rows -= rows;
        draft.bytes -= freed;
        draft.deleted = true;
      }
    }
    // Declarations written by this call are never candidates, so each round drops what it must or stops.
    const limit = draft.seq;
    while (draft.bytes > target) {
      const chosen = this.#choose(draft, limit, target);
      if (chosen.length === 0) return;
      // What is gone, as intervals of seqs: the chosen rows and, for each chosen declaration, the range it
      // declared, which the new declaration carries on, so no drop is ever left undeclared.
      const pieces: Gone[] = [];
      for (const row of chosen) {
        pieces.push({ from: row.seq, to: row.seq, rows: 1, bytes: row.bytes, alerts: row.kind === 'alert' ? 1 : 0, earlier: 0 });
        if (row.kind !== 'declaration') continue;
        const declared = this.#sql.declared.get(row.seq) as { from: unknown; to: unknown; fromPrev: unknown; toHash: unknown };
        if (typeof declared.from === 'number' && typeof declared.to === 'number' && typeof declared.fromPrev === 'string' && typeof declared.toHash === 'string') {
          pieces.push({ from: declared.from, to: declared.to, rows: 0, bytes: 0, alerts: 0, earlier: declared.to - declared.from + 1, fromPrev: declared.fromPrev, toHash: declared.toHash });
        }
      }
      pieces.sort((a, b) => a.from - b.from);
      const intervals: Gone[] = [];
      for (const piece of pieces) {
        const last = intervals.at(-1);
        if (last && last.to + 1 === piece.from) {
          last.to = piece.to;
          last.rows += piece.rows;
          last.bytes += piece.bytes;
          last.alerts += piece.alerts;
          last.earlier += piece.earlier;
          if (piece.toHash === undefined) delete last.toHash;
          else last.toHash = piece.toHash;
        } else {
          intervals.push({ ...piece });
        }
      }
      for (const gone of intervals) {
        // Ends that are rows still stored give their own chain links; carried ranges brought theirs.
        gone.fromPrev ??= this.#sql.prevOf.get(gone.from) as string;
        gone.toHash ??= this.#sql.hashOf.get(gone.to) as string;
      }
      for (const gone of intervals) {
        // Every stored row inside an interval is a chosen one: the rest of it was gone already.
        this.#sql.deleteRange.run(gone.from, gone.to);
        draft.rows -= gone.rows;
        draft.unacked -= gone.rows;
        draft.unackedBytes -= gone.bytes;
        draft.bytes -= gone.bytes;
        draft.dropped += gone.rows;
      }
      draft.deleted = true;
      for (const gone of intervals) {
        const count = gone.to - gone.from + 1;
        const alerts = gone.alerts > 0 ? `, ${gone.alerts} of them alerts` : '';
        const earlier = gone.earlier > 0 ? `, ${gone.earlier} of them dropped before and declared by records now dropped too` : '';
        this.#insert(this.#seal(this.#agentEvent({
          Action: 'buffer_dropped', Count: count, FromSeq: gone.from, ToSeq: gone.to, FromPrev: gone.fromPrev, ToHash: gone.toHash,
          Message: `${count} records dropped (seqs ${gone.from}–${gone.to}${alerts}${earlier}): the outbox passed its cap of ${maxBytes} bytes while they waited for the collector`,
        }, now), 'declaration', draft), draft);
      }
    }
  }

  /** The unacked rows to drop this round, in DROP_ORDER and oldest first, until the rest (and their declarations) fit under `target`. */
  #choose(draft: Draft, limit: number, target: number): Array<{ seq: number; bytes: number; kind: Kind }> {
    const chosen: Array<{ seq: number; bytes: number; kind: Kind }> = [];
    let freed = 0;
    let runs = 0;
    const fits = () => draft.bytes - freed + runs * DECLARATION_BYTES <= target;
    for (const kind of DROP_ORDER) {
      let previous = -1;
      for (const row of this.#sql.unackedOfKind.iterate(draft.ackedSeq, limit, kind) as IterableIterator<{ seq: number; bytes: number }>) {
        if (fits()) break;
        if (row.seq !== previous + 1) runs++;
        previous = row.seq;
        chosen.push({ seq: row.seq, bytes: row.bytes, kind });
        freed += row.bytes;
      }
      if (fits()) break;
    }
    return chosen;
  }

  /** Deletes acked rows acked more than retainAckedMs ago (inside a flush transaction). */
  #retain(draft: Draft, now: number): void {
    draft.retentionAt = now;
    if (draft.ackedSeq === 0) return;
    // Acks are cumulative and timestamped as they come: the newest ack old enough says how far rows go
    // (a clock set back only keeps a few rows longer).
    const old = this.#sql.lastOldAck.get(now - this.#settings.retainAckedMs) as number | null;
    if (old === null) return;
    const upTo = Math.min(old, draft.ackedSeq);
    this.#sql.forgetAcksUpTo.run(upTo);
    const gone = this.#sql.totalsUpTo.get(upTo) as { rows: number; bytes: number };
    if (gone.rows === 0) return;
    this.#sql.deleteUpTo.run(upTo);
    draft.rows -= gone.rows;
    draft.bytes -= gone.bytes;
    draft.deleted = true;
  }

  /** Makes room in the queue while writes fail: the oldest plain events go, counted, to be declared. */
  #shed(): void {
    const excess = this.#queue.length - Math.floor(this.#settings.queueBound * LOW_WATER);
    let shed = 0;
    let kept = this.#queue.filter((record) => {
      if (shed < excess && !('rule' in record) && record.category !== 'agent') {
        shed++;
        return false;
      }
      return true;
    });
    // Nothing but alerts and the agent's own facts: the oldest of those go rather than memory growing.
    if (shed < excess) {
      kept = kept.slice(excess - shed);
      shed = excess;
    }
    this.#queue = kept;
    this.#noteUnsequenced(shed, `the queue passed ${this.#settings.queueBound} records while the outbox could not write (${this.#writeError?.message ?? 'write failed'})`);
  }

  #noteUnsequenced(count: number, reason: string): void {
    if (this.#unsequenced.count === 0) this.#unsequenced.reason = reason;
    else if (!this.#unsequenced.reason.endsWith('; and others')) this.#unsequenced.reason += '; and others';
    this.#unsequenced.count += count;
    this.#dropped += count;
  }

  /** Records a write failure and gives the error to throw. */
  #failed(what: 'flush' | 'ack', error: unknown, now: number): OutboxError {
    const sqliteCode = error instanceof Database.SqliteError ? error.code : undefined;
    const code: OutboxErrorCode = sqliteCode === 'SQLITE_FULL' ? 'OUTBOX_FULL' : 'OUTBOX_WRITE_FAILED';
    const kept = what === 'flush' ? `${this.#queue.length} records kept queued` : 'the ack is retried with the next flush';
    const message = `outbox ${this.#settings.path}: ${what} failed${sqliteCode ? ` (${sqliteCode})` : ''}, ${kept}: ${(error as Error).message}`;
    this.#writeError = { code, message, sinceMs: this.#writeError?.sinceMs ?? now };
    return new OutboxError(code, message, { cause: error });
  }

  /** A flush from the timer or the size trigger: a failure is kept in stats() and retried, not thrown at the caller of append. */
  #flushQuietly(): void {
    try {
      this.flush();
    } catch (error) {
      // flush() has kept the error for stats() and armed the retry.
      if (!(error instanceof OutboxError) || error.code === 'OUTBOX_CLOSED') throw error;
    }
  }

  #arm(delayMs: number): void {
    if (this.#timer !== undefined || this.#closed) return;
    // unref: a pending flush must not keep the process alive; shutdown flushes through close().
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (!this.#closed) this.#flushQuietly();
    }, delayMs).unref();
  }

  #agentEvent(fields: AgentFact, now: number): OutboxInput {
    const { host, product } = this.#settings;
    return { id: uuidv7(), time: new Date(now).toISOString(), host: { id: host.id, name: host.name }, product, category: 'agent', fields };
  }
}

function statements(db: Database.Database) {
  const begin = db.prepare('BEGIN');
  const commit = db.prepare('COMMIT');
  const rollback = db.prepare('ROLLBACK');
  return {
    meta: db.prepare('SELECT schema_version, stream, acked_seq, last_seq, last_hash FROM meta WHERE id = 1'),
    newest: db.prepare("SELECT seq, json_extract(json, '$.hash') AS hash FROM records ORDER BY seq DESC LIMIT 1"),
    totals: db.prepare('SELECT COUNT(*) AS rows, TOTAL(bytes) AS bytes FROM records'),
    totalsUpTo: db.prepare('SELECT COUNT(*) AS rows, TOTAL(bytes) AS bytes FROM records WHERE seq <= ?'),
    totalsAfter: db.prepare('SELECT COUNT(*) AS rows, TOTAL(bytes) AS bytes FROM records WHERE seq > ?'),
    insert: db.prepare('INSERT INTO records (seq, kind, bytes, json) VALUES (?, ?, ?, ?)'),
    pending: db.prepare('SELECT seq, bytes, json FROM records WHERE seq > ? ORDER BY seq LIMIT ?'),
    markAcked: db.prepare('INSERT OR REPLACE INTO acks (upto, at) VALUES (?, ?)'),
    totalsBetween: db.prepare('SELECT COUNT(*) AS rows, TOTAL(bytes) AS bytes FROM records WHERE seq > ? AND seq <= ?'),
    setAcked: db.prepare('UPDATE meta SET acked_seq = ? WHERE id = 1'),
    setLast: db.prepare('UPDATE meta SET last_seq = ?, last_hash = ? WHERE id = 1'),
    ackedRows: db.prepare('SELECT seq, bytes FROM records WHERE seq <= ? ORDER BY seq'),
    unackedOfKind: db.prepare('SELECT seq, bytes FROM records WHERE seq > ? AND seq <= ? AND kind = ? ORDER BY seq'),
    prevOf: db.prepare("SELECT json_extract(json, '$.prev') FROM records WHERE seq = ?").pluck(),
    hashOf: db.prepare("SELECT json_extract(json, '$.hash') FROM records WHERE seq = ?").pluck(),
    declared: db.prepare(`SELECT json_extract(json, '$.fields.FromSeq') AS "from", json_extract(json, '$.fields.ToSeq') AS "to",
      json_extract(json, '$.fields.FromPrev') AS fromPrev, json_extract(json, '$.fields.ToHash') AS toHash FROM records WHERE seq = ?`),
    deleteUpTo: db.prepare('DELETE FROM records WHERE seq <= ?'),
    deleteRange: db.prepare('DELETE FROM records WHERE seq BETWEEN ? AND ?'),
    lastOldAck: db.prepare('SELECT MAX(upto) FROM acks WHERE at <= ?').pluck(),
    forgetAcksUpTo: db.prepare('DELETE FROM acks WHERE upto <= ?'),
    /** Runs `body` in one transaction (prepared BEGIN/COMMIT: the flush path is hot); rolls back if it throws. */
    transaction(body: () => void): void {
      begin.run();
      try {
        body();
        commit.run();
      } catch (error) {
        if (db.inTransaction) rollback.run();
        throw error;
      }
    },
  };
}

/** The file failed its checks: to be set aside. `previousStream` is its stream id, if that could be read. */
class CorruptFile extends Error {
  readonly previousStream: string | undefined;

  constructor(message: string, previousStream: string | undefined) {
    super(message);
    this.previousStream = previousStream;
  }
}

function isCorruption(error: unknown): error is InstanceType<typeof Database.SqliteError> {
  return error instanceof Database.SqliteError && (error.code === 'SQLITE_NOTADB' || error.code.startsWith('SQLITE_CORRUPT'));
}

/** Opens the outbox file, creating the schema in a new or empty file. Throws CorruptFile when the file fails its checks. */
/** Checkpoints move to their own thread; if it cannot run, the writer checkpoints itself again, as SQLite does by default. */
export function startCheckpointer(db: Database.Database, path: string): Worker | undefined {
  let worker: Worker;
  try {
    worker = new Worker(new URL('./checkpointer.js', import.meta.url), { workerData: { path, intervalMs: CHECKPOINT_EVERY_MS } });
  } catch {
    // No thread (none may be started here): the writer keeps SQLite's own checkpoints, as before.
    return undefined;
  }
  db.pragma('wal_autocheckpoint = 0');
  const fallBack = () => {
    if (db.open) db.pragma(`wal_autocheckpoint = ${SQLITE_AUTOCHECKPOINT_PAGES}`);
  };
  worker.on('error', fallBack);
  worker.on('message', (message: { error?: string }) => {
    if (message.error) fallBack();
  });
  worker.on('exit', fallBack);
  worker.unref();
  return worker;
}

function openDatabase(path: string, now: number): Database.Database {
  if (existsSync(path)) check(path);
  let db: Database.Database;
  try {
    db = new Database(path);
  } catch (error) {
    throw new OutboxError('OUTBOX_OPEN_FAILED', `cannot open outbox ${path}: ${(error as Error).message}`, { cause: error });
  }
  try {
    // WAL with synchronous=NORMAL: a commit is in the WAL file before COMMIT returns, so a killed agent
    // (SIGKILL, OOM, crash) loses nothing it committed; only an OS crash or power cut can take back the
    // last commits since a checkpoint, and never leaves the file corrupt. FULL would fsync every commit.
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    // After a burst the WAL file is cut back to this, not left at its peak.
    db.pragma('journal_size_limit = 16777216');
    const tables = db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'").pluck().all();
    if (tables.length === 0) create(db, now);
    else migrate(db);
    return db;
  } catch (error) {
    db.close();
    // Passed the checks a moment ago: only a change under our feet gets here.
    if (isCorruption(error)) throw new CorruptFile(`${error.message} (${error.code})`, undefined);
    throw error;
  }
}

/**
 * Checks an existing file through a read-only connection, which never checkpoints, rewrites or deletes
 * anything: a file that fails is set aside exactly as it was found, WAL included, for whoever looks into it.
 */
function check(path: string): void {
  let db: Database.Database;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
  } catch (error) {
    if (isCorruption(error)) throw new CorruptFile(`${error.message} (${error.code})`, undefined);
    throw new OutboxError('OUTBOX_OPEN_FAILED', `cannot open outbox ${path}: ${(error as Error).message}`, { cause: error });
  }
  let previousStream: string | undefined;
  try {
    const tables = db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'").pluck().all() as string[];
    // An empty file (or one with no tables) holds no stream: it becomes a new outbox.
    if (tables.length === 0) return;
    try {
      const stream: unknown = db.prepare('SELECT stream FROM meta WHERE id = 1').pluck().get();
      if (typeof stream === 'string' && STREAM_ID.test(stream)) previousStream = stream;
    } catch {
      // Unreadable meta is reported by the checks below; the old stream id is only a courtesy.
    }
    // quick_check reads every page (O(N), a second or so for the default 512 MiB cap), once per start.
    const problems = (db.pragma('quick_check') as Array<{ quick_check: string }>).map((row) => row.quick_check);
    if (problems.length !== 1 || problems[0] !== 'ok') {
      throw new CorruptFile(`quick_check failed: ${problems.slice(0, 3).join('; ')}${problems.length > 3 ? `; and ${problems.length - 3} more` : ''}`, previousStream);
    }
    if (!tables.includes('meta') || !tables.includes('records')) throw new CorruptFile(`not an omwatch outbox: tables ${tables.join(', ')}`, previousStream);
    const meta = db.prepare('SELECT schema_version, stream, acked_seq, last_seq, last_hash FROM meta WHERE id = 1').get() as MetaRow | undefined;
    if (!meta) throw new CorruptFile('the meta row is missing', previousStream);
    if (!READABLE_VERSIONS.has(meta.schema_version)) {
      throw new OutboxError('OUTBOX_SCHEMA', `outbox ${path} has schema version ${meta.schema_version}; this agent reads versions ${[...READABLE_VERSIONS].join(' and ')}`);
    }
    if (!STREAM_ID.test(meta.stream)) throw new CorruptFile(`the stream id ${JSON.stringify(meta.stream)} is not valid`, previousStream);
  } catch (error) {
    if (isCorruption(error)) throw new CorruptFile(`${error.message} (${error.code})`, previousStream);
    throw error;
  } finally {
    db.close();
  }
}

/** Version 1 kept each row's ack time in the row (acked_at): its acks become the acks table. */
function migrate(db: Database.Database): void {
  const version = db.prepare('SELECT schema_version FROM meta WHERE id = 1').pluck().get() as number;
  if (version === SCHEMA_VERSION) return;
  db.transaction(() => {
    db.exec(ACKS_TABLE);
    db.exec('INSERT INTO acks (upto, at) SELECT MAX(seq), acked_at FROM records WHERE acked_at IS NOT NULL GROUP BY acked_at');
    db.prepare('UPDATE meta SET schema_version = ? WHERE id = 1').run(SCHEMA_VERSION);
  })();
}

function create(db: Database.Database, now: number): void {
  const stream = randomBytes(16).toString('base64url');
  db.transaction(() => {
    db.exec(SCHEMA);
    db.prepare('INSERT INTO meta (id, schema_version, stream, acked_seq, last_seq, last_hash, created_at) VALUES (1, ?, ?, 0, 0, ?, ?)')
      .run(SCHEMA_VERSION, stream, GENESIS, now);
  })();
}

/**
 * Moves a file (and its WAL and shared-memory files, which belong to it) to `<path>.<why>-<time>`:
 * `corrupt`, or `behind` for an outbox the collector is ahead of.
 */
function setAside(path: string, now: number, why: 'corrupt' | 'behind' = 'corrupt'): string {
  const stamp = new Date(now).toISOString().replaceAll(':', '');
  let movedTo = `${path}.${why}-${stamp}`;
  for (let n = 2; existsSync(movedTo); n++) movedTo = `${path}.${why}-${stamp}-${n}`;
  renameSync(path, movedTo);
  for (const suffix of ['-wal', '-shm']) {
    if (existsSync(`${path}${suffix}`)) renameSync(`${path}${suffix}`, `${movedTo}${suffix}`);
  }
  return movedTo;
}

function settle(options: OutboxOptions): Settings {
  const fail = (what: string, value: unknown) => {
    throw new OutboxError('OUTBOX_OPTIONS', `outbox options: expected ${what}, got ${typeof value === 'string' ? JSON.stringify(value) : String(value)}`);
  };
  const { path, maxBytes, retainAckedMs, flushIntervalMs = DEFAULT_FLUSH_INTERVAL_MS, maxQueued = DEFAULT_MAX_QUEUED, host, product, now = Date.now } = options;
  if (typeof path !== 'string' || path === '' || path === ':memory:') fail('path to be a file path', path);
  if (!Number.isSafeInteger(maxBytes) || maxBytes <= 0) fail('maxBytes to be a positive integer', maxBytes);
  if (!Number.isFinite(retainAckedMs) || retainAckedMs < 0) fail('retainAckedMs to be a non-negative number', retainAckedMs);
  if (!Number.isFinite(flushIntervalMs) || flushIntervalMs < 0) fail('flushIntervalMs to be a non-negative number', flushIntervalMs);
  if (!Number.isSafeInteger(maxQueued) || maxQueued < 1) fail('maxQueued to be a positive integer', maxQueued);
  if (typeof host?.id !== 'string' || host.id === '' || typeof host.name !== 'string' || host.name === '') fail('host to have a non-empty id and name', JSON.stringify(host));
  if (product !== 'linux' && product !== 'windows') fail('product to be linux or windows', product);
  if (typeof now !== 'function') fail('now to be a function', now);
  return { path, maxBytes, retainAckedMs, flushIntervalMs, maxQueued, queueBound: maxQueued * QUEUE_BOUND_FACTOR, host, product, now };
}

function kindOf(record: OutboxInput): Kind {
  if ('rule' in record) return 'alert';
  // A fact that declares lost records is what is left last under the cap, whoever wrote it.
  const action = record.category === 'agent' ? (record.fields as { Action?: unknown }).Action : undefined;
  if (action === 'buffer_dropped' || action === 'outbox_reset') return 'declaration';
  return 'event';
}

function nameOf(record: OutboxInput): string {
  return 'rule' in record ? `alert ${record.id}` : `${record.category} event ${record.id}`;
}
