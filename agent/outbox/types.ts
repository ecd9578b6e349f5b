// The agent's outbox (design.md §5–§6): every event and alert is written here before anything is sent,
// numbered gap-free per stream and chained by hash; rows leave only after the collector acks them.
import type { AlertRecord, OmEvent } from '../../collector/protocol/index.ts';

/** A record before the outbox numbers and chains it: an event or an alert, without stream/seq/hash/prev. */
export type OutboxInput = Omit<OmEvent, 'stream' | 'seq' | 'hash' | 'prev'> | AlertRecord;

export interface OutboxOptions {
  /** The SQLite file (WAL mode). Its folder must exist. */
  path: string;
  /**
   * The byte cap over stored rows (their JSON), acked or not. Past it after a flush, rows go until the
   * total is down to 90% of it: acked rows first, then the oldest plain events, then alerts, and the
   * outbox's own declarations only when nothing else is left. Each run of dropped seqs is declared.
   */
  maxBytes: number;
  /** How long acked rows stay for local audit (checked at most once a second, during a flush). */
  retainAckedMs: number;
  /** Queued records are written in one transaction at most this often (and at `maxQueued`). Default 20. */
  flushIntervalMs?: number;
  /** A queue this long is written at once. Default 2000. While writes fail, the queue holds up to 10× this. */
  maxQueued?: number;
  /** Host of the agent, for the outbox's own `agent` events (buffer_dropped, outbox_reset). */
  host: { id: string; name: string };
  product: 'linux' | 'windows';
  /** The clock, in ms since the epoch (acked_at, retention, the time of the outbox's own events). */
  now?: () => number;
}

export interface PendingRow {
  seq: number;
  /** The full wire record as JSON (stream, seq, hash and prev included), sent verbatim. */
  json: string;
}

export interface OutboxStats {
  rows: number;
  bytes: number;
  unacked: number;
  /** The bytes (JSON) of the unacked rows: what delivery still owes the collector. */
  unackedBytes: number;
  lastSeq: number;
  ackedSeq: number;
  /** Records dropped since the outbox was opened: by the byte cap, by the queue bound while writes fail, or with no JSON form. Every one is declared in the stream. */
  dropped: number;
  /** Records appended but not yet written. */
  queued?: number;
  /** Present while writes fail (disk full, I/O error): since when, and the last error. Cleared by the next flush that writes. */
  writeError?: { code: string; message: string; sinceMs: number };
}

export interface Outbox {
  /** This database's stream id; a new one when the file is recreated. */
  readonly stream: string;
  /** Queues a record; it gets its seq and hash when the queue is flushed (by timer, size, or flush()). */
  append(record: OutboxInput): void;
  /**
   * Writes the queue in one transaction; returns the last seq written. When the write fails (disk full,
   * I/O error) it throws an OutboxError (OUTBOX_FULL, OUTBOX_WRITE_FAILED) and the records stay queued;
   * flushes by timer or size keep that error in stats().writeError instead, and retry.
   */
  flush(): number;
  /** Unacked rows with seq > afterSeq, in order, at most `limit` rows and about `maxBytes` bytes (at least one row). */
  pending(afterSeq: number, limit: number, maxBytes: number): PendingRow[];
  /** Cumulative: every row with seq ≤ `seq` is delivered (persisted; an ack past the last written seq acks up to it). */
  ack(seq: number): void;
  stats(): OutboxStats;
  /** Called after each flush that wrote rows, with the last seq. */
  onFlush(listener: (lastSeq: number) => void): void;
  /** Flushes and closes the database; throws (after closing) if the last flush failed. */
  close(): void;
}

export interface OpenedOutbox {
  outbox: Outbox;
  /** Set when the file was corrupt: where it was moved, and the stream that ended with it (if readable). */
  reset?: { movedTo: string; reason: string };
}
