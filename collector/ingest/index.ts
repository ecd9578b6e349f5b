// Ingest: one agent connection's frames → checked records → one committed transaction → a cumulative
// ack (design.md §4–§6). Every frame is validated; a bad one closes the connection with a close code
// and is counted by reason; nothing from a rejected frame is stored.
import { v7 as uuidv7 } from 'uuid';
import type WebSocket from 'ws';
import type { z } from 'zod';
import {
  BatchFrameSchema, CloseCode, isAlert, parseRecord, PtyFrameSchema, sealRecord, SessionsFrameSchema, StatusFrameSchema, type PtyFrame, type SessionsFrame,
  type StatusFrame, type WelcomeFrame, type WireRecord,
} from '../protocol/index.ts';
import type { Agent, CollectorAlert, Commit, Gap, IngestRecord, Store } from '../store/types.ts';

export interface IngestOptions {
  /** Records per second an agent may send on average; past it, its socket is paused (backpressure). */
  maxRecordsPerSec: number;
  /** Records it may send at once after being idle. */
  burstRecords: number;
  /** A gap not declared by a buffer_dropped record within this time raises chain_broken. */
  gapDeclarationMs: number;
  /** Streams one agent may have. */
  maxStreamsPerAgent: number;
}

/** How often a connected agent's key is checked again for revocation, at most. */
const REVOCATION_CHECK_MS = 5_000;

/** Declarations kept per stream to cover gaps with (the oldest go first). */
const MAX_DECLARATIONS = 10_000;

/** Records a stream may have checked but not committed before its connection stops being read. */
const MAX_QUEUED_PER_STREAM = 20_000;

/** Records per group commit, at most (a frame is never split). */
const MAX_GROUP_RECORDS = 4_000;

export const DEFAULT_INGEST_OPTIONS: IngestOptions = { maxRecordsPerSec: 20_000, burstRecords: 200_000, gapDeclarationMs: 60_000, maxStreamsPerAgent: 64 };

/** Why a frame was refused; each is counted. */
export type RejectReason =
  | 'binary_frame' | 'bad_json' | 'bad_frame' | 'bad_record' | 'foreign_stream' | 'bad_sequence' | 'hash_mismatch' | 'broken_link'
  // Refused by the WebSocket layer itself: a frame past MAX_FRAME_BYTES (1009), or broken framing or UTF-8.
  | 'oversize' | 'protocol_error';

export interface IngestCounters {
  frames: number;
  records: number;
  duplicates: number;
  rejected: Partial<Record<RejectReason, number>>;
  throttled: number;
  gapsOpened: number;
  gapsDeclared: number;
  chainBroken: number;
  /** Group commits the store refused (their frames were not acked, and are resent). */
  commitFailures: number;
  /** Connections closed because their agent's key was revoked while connected. */
  revokedClosed: number;
}

interface QueuedFrame {
  runtime: StreamRuntime;
  ws: WebSocket;
  commit: Commit | undefined;
  fresh: WireRecord[];
  alerts: CollectorAlert[];
}

/** Where alerts go as they are committed: the live feed. */
export type AlertListener = (agentId: string, alert: Record<string, unknown>) => void;
/** Where an agent's recorded-shell frames go (live output, the list of its live sessions): not stored. */
export type SessionFrameListener = (agentId: string, ws: WebSocket, frame: PtyFrame | SessionsFrame) => void;
/** Where an agent's status goes (its version, rules version, outbox depth): not stored. */
export type StatusListener = (agentId: string, frame: StatusFrame) => void;

export interface StreamRuntime {
  stream: string;
  agentId: string;
  ackedSeq: number;
  lastHash: string;
  openGaps: Map<number, Gap>;
  /** Records checked and queued, not yet committed; past MAX_QUEUED_PER_STREAM the connection is paused. */
  queued: number;
  held: boolean;
  /** buffer_dropped declarations seen, by FromSeq, for gaps they cover together. */
  declarations: Map<number, Declaration>;
  /** The high-water mark and hash of what is checked and queued, ahead of what is committed. */
  pendingSeq: number;
  pendingHash: string;
  connection: WebSocket | undefined;
  /** When this stream last raised chain_broken for a refused frame: at most one a minute, the rest counted. */
  brokenAlertAt: number;
}

class Rejection extends Error {
  readonly reason: RejectReason;
  readonly closeCode: number;
  constructor(reason: RejectReason, message: string, closeCode: number = CloseCode.BAD_FRAME) {
    super(message);
    this.reason = reason;
    this.closeCode = closeCode;
  }
}

export class Ingest {
  readonly counters: IngestCounters = { frames: 0, records: 0, duplicates: 0, rejected: {}, throttled: 0, gapsOpened: 0, gapsDeclared: 0, chainBroken: 0, commitFailures: 0, revokedClosed: 0 };
  #queue: QueuedFrame[] = [];
  #flushScheduled = false;
  #committing = false;
  readonly #commitMany: (commits: Commit[]) => Promise<void> | void;
  readonly #onError: (error: Error) => void;
  readonly #onSessionFrame: SessionFrameListener;
  readonly #onStatus: StatusListener;
  readonly #store: Store;
  readonly #options: IngestOptions;
  readonly #streams = new Map<string, StreamRuntime>();
  readonly #onAlert: AlertListener;
  readonly #now: () => number;

  /**
   * `commitMany` defaults to the store's own (synchronous) one; the collector passes a writer thread's.
   */
  constructor(store: Store, onAlert: AlertListener, options: Partial<IngestOptions> = {}, hooks: { now?: () => number; onError?: (error: Error) => void; commitMany?: (commits: Commit[]) => Promise<void> | void; onSessionFrame?: SessionFrameListener; onStatus?: StatusListener } = {}) {
    const { now = Date.now, onError = () => {}, commitMany = (commits) => store.commitMany(commits), onSessionFrame = () => {}, onStatus = () => {} } = hooks;
    this.#onSessionFrame = onSessionFrame;
    this.#onStatus = onStatus;
    this.#commitMany = commitMany;
    this.#store = store;
    this.#onAlert = onAlert;
    this.#onError = onError;
    this.#options = { ...DEFAULT_INGEST_OPTIONS, ...options };
    this.#now = now;
  }

  /**
   * Claims the stream for the agent, or says why not: another agent owns it, or the agent already has
   * as many streams as it may (a new stream is a new outbox file, which is rare; an enrolled key must
   * not be able to fill the store with empty ones). A stream has one writer: a new connection for it
   * replaces the old one.
   */
  open(agent: Agent, stream: string): StreamRuntime | { refused: 'foreign_stream' | 'too_many_streams' } {
    let runtime = this.#streams.get(stream);
    if (!runtime) {
      const existing = this.#store.stream(stream);
      if (!existing && this.#store.streams().filter((s) => s.agentId === agent.id).length >= this.#options.maxStreamsPerAgent) {
        return { refused: 'too_many_streams' };
      }
      const state = existing ?? this.#store.claimStream(stream, agent.id);
      const openGaps = new Map(this.#store.gaps(stream).filter((g) => g.declaredAt === null).map((g) => [g.fromSeq, g]));
      // Declarations stored after an open gap may cover part of it (before a restart): they count too.
      const declarations = new Map<number, Declaration>();
      if (openGaps.size > 0) {
        const after = Math.min(...openGaps.keys());
        for (const stored of this.#store.records({ stream, category: 'agent', afterSeq: after })) {
          const d = declared(JSON.parse(stored.body) as WireRecord);
          if (d) declarations.set(d.fromSeq, d);
        }
      }
      runtime = { stream, agentId: state.agentId, ackedSeq: state.ackedSeq, lastHash: state.lastHash, pendingSeq: state.ackedSeq, pendingHash: state.lastHash, openGaps, declarations, queued: 0, held: false, connection: undefined, brokenAlertAt: Number.NEGATIVE_INFINITY };
      this.#streams.set(stream, runtime);
    }
    return runtime.agentId === agent.id ? runtime : { refused: 'foreign_stream' };
  }

  /** Serves one agent connection on an opened stream. */
  accept(ws: WebSocket, agent: Agent, runtime: StreamRuntime): void {
    runtime.connection?.close(CloseCode.BAD_SEQUENCE, 'replaced by a newer connection for this stream');
    runtime.connection = ws;
    const welcome: WelcomeFrame = { type: 'welcome', stream: runtime.stream, ackedSeq: runtime.ackedSeq };
    ws.send(JSON.stringify(welcome));
    const bucket = { tokens: this.#options.burstRecords, at: this.#now() };
    let checkedAt = this.#now();
    ws.on('message', (data, isBinary) => {
      if (runtime.connection !== ws) return;
      // A key revoked (by the CLI, another process) while connected stops being served within seconds.
      if (this.#now() - checkedAt > REVOCATION_CHECK_MS) {
        checkedAt = this.#now();
        if (this.#store.agent(agent.id)?.revokedAt !== null) {
          this.counters.revokedClosed++;
          ws.close(CloseCode.REVOKED, 'the agent key was revoked');
          return;
        }
      }
      try {
        const records = this.#frame(data, isBinary, runtime, ws);
        this.#throttle(ws, bucket, records);
      } catch (error) {
        if (!(error instanceof Rejection)) throw error;
        this.#count(error.reason);
        ws.close(error.closeCode, error.message.slice(0, 120));
      }
    });
    ws.on('error', (error: Error & { code?: string }) => {
      this.#count(error.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? 'oversize' : 'protocol_error');
    });
    ws.on('close', () => {
      if (runtime.connection === ws) runtime.connection = undefined;
    });
  }

  #count(reason: RejectReason): void {
    this.counters.rejected[reason] = (this.counters.rejected[reason] ?? 0) + 1;
  }

  /** Gaps left undeclared past their time raise chain_broken; called periodically. */
  sweepGaps(): void {
    const now = this.#now();
    for (const runtime of this.#streams.values()) {
      for (const gap of runtime.openGaps.values()) {
        if (gap.alertedAt !== null || now - Date.parse(gap.openedAt) < this.#options.gapDeclarationMs) continue;
        const alert = collectorAlert('chain_broken', runtime, now, `stream ${runtime.stream}: seqs ${gap.fromSeq}–${gap.toSeq} missing and not declared dropped`, { fromSeq: gap.fromSeq, toSeq: gap.toSeq });
        gap.alertedAt = alert.time;
        try {
          this.#store.markGapAlerted(runtime.stream, gap.fromSeq, alert.time, alert);
        } catch (error) {
          // The gap's commit is still queued (or the store failed): tried again at the next sweep.
          gap.alertedAt = null;
          this.#onError(error as Error);
          continue;
        }
        this.counters.chainBroken++;
        this.#onAlert(runtime.agentId, { collectorAlert: alert });
      }
    }
  }

  #frame(data: WebSocket.RawData, isBinary: boolean, runtime: StreamRuntime, ws: WebSocket): number {
    this.counters.frames++;
    if (isBinary) throw new Rejection('binary_frame', 'frames must be JSON text');
    let value: unknown;
    try {
      value = JSON.parse(data.toString());
    } catch (error) {
      throw new Rejection('bad_json', `frame is not JSON: ${(error as Error).message}`);
    }
    const type = typeof value === 'object' && value !== null ? (value as { type?: unknown }).type : undefined;
    if (type === 'pty' || type === 'sessions') {
      const session = (type === 'pty' ? PtyFrameSchema : SessionsFrameSchema).safeParse(value);
      if (!session.success) throw new Rejection('bad_frame', `not a ${type} frame: ${firstIssue(session.error)}`);
      this.#onSessionFrame(runtime.agentId, ws, session.data);
      return 0;
    }
    if (type === 'status') {
      const status = StatusFrameSchema.safeParse(value);
      if (!status.success) throw new Rejection('bad_frame', `not a status frame: ${firstIssue(status.error)}`);
      this.#onStatus(runtime.agentId, status.data);
      return 0;
    }
    const frame = BatchFrameSchema.safeParse(value);
    if (!frame.success) throw new Rejection('bad_frame', `not a batch frame: ${firstIssue(frame.error)}`);
    if (frame.data.stream !== runtime.stream) throw new Rejection('foreign_stream', `batch for stream ${frame.data.stream} on a connection for ${runtime.stream}`, CloseCode.FOREIGN_STREAM);
    const records: WireRecord[] = [];
    let previousSeq = 0;
    for (const [index, item] of frame.data.events.entries()) {
      const parsed = parseRecord(item);
      if (!parsed.ok) throw new Rejection('bad_record', `record ${index}: ${parsed.error}`);
      const { record } = parsed;
      if (record.stream !== runtime.stream) throw new Rejection('foreign_stream', `record ${index} names stream ${record.stream}`, CloseCode.FOREIGN_STREAM);
      if (record.seq <= previousSeq) throw new Rejection('bad_sequence', `record ${index}: seq ${record.seq} after ${previousSeq}`, CloseCode.BAD_SEQUENCE);
      previousSeq = record.seq;
      records.push(record);
    }
    this.#accept(runtime, ws, records);
    return records.length;
  }

  /**
   * Checks the chain against what is stored or already queued, and queues the new records with the
   * stream's new high-water mark. The queue is committed by #flush in one transaction for every
   * connection's frames (group commit: one durable write for many agents), and only then acked.
   */
  #accept(runtime: StreamRuntime, ws: WebSocket, records: WireRecord[]): void {
    const now = this.#now();
    const nowIso = new Date(now).toISOString();
    let ackedSeq = runtime.pendingSeq;
    let lastHash = runtime.pendingHash;
    const rows: IngestRecord[] = [];
    const gapsOpened: NonNullable<Commit['gapsOpened']> = [];
    const gapsDeclared: number[] = [];
    const alerts: CollectorAlert[] = [];
    const fresh: WireRecord[] = [];
    const declarationsSeen: Declaration[] = [];
    for (const record of records) {
      if (record.seq <= ackedSeq) {
        // Resent after a lost ack, or replayed: what is stored (or queued) stands.
        this.counters.duplicates++;
        continue;
      }
      // One serialization gives both the hash to check and the body to store (canonical, hash first).
      const sealed = sealRecord(record as unknown as Record<string, unknown>, { stream: record.stream, seq: record.seq, prev: record.prev });
      const computed = sealed.hash;
      if (computed !== record.hash) throw this.#broken(runtime, 'hash_mismatch', record.seq, `seq ${record.seq}: hash ${record.hash} but the record hashes to ${computed}`, now);
      if (record.seq === ackedSeq + 1) {
        if (record.prev !== lastHash) throw this.#broken(runtime, 'broken_link', record.seq, `seq ${record.seq}: prev ${record.prev} but seq ${ackedSeq} has hash ${lastHash}`, now);
      } else {
        // Seqs the agent may have dropped under its byte cap: accepted, to be declared by a buffer_dropped record.
        gapsOpened.push({ fromSeq: ackedSeq + 1, toSeq: record.seq - 1, beforeHash: lastHash, afterPrev: record.prev, openedAt: nowIso });
      }
      ackedSeq = record.seq;
      lastHash = record.hash;
      rows.push(toRow(record, sealed.json));
      fresh.push(record);
      const declaration = declared(record);
      if (declaration) declarationsSeen.push(declaration);
    }
    // The frame is accepted whole (a refusal above throws before this): only now do its gaps and
    // declarations enter the stream's state, in seq order.
    for (const gap of gapsOpened) {
      runtime.openGaps.set(gap.fromSeq, { ...gap, stream: runtime.stream, declaredAt: null, alertedAt: null });
      this.counters.gapsOpened++;
    }
    for (const declaration of declarationsSeen) this.#declare(runtime, declaration, gapsDeclared, alerts, now);
    for (const fromSeq of gapsDeclared) runtime.openGaps.delete(fromSeq);
    runtime.pendingSeq = ackedSeq;
    runtime.pendingHash = lastHash;
    const commit = rows.length > 0 ? { stream: runtime.stream, records: rows, state: { ackedSeq, lastHash }, gapsOpened, gapsDeclared, alerts } : undefined;
    // A frame of duplicates is queued too, so its ack follows the commits queued before it.
    this.#queue.push({ runtime, ws, commit, fresh, alerts });
    // Bounded: a stream with this much checked but uncommitted stops being read until commits catch up.
    runtime.queued += rows.length;
    if (runtime.queued > MAX_QUEUED_PER_STREAM && !runtime.held) {
      runtime.held = true;
      this.counters.throttled++;
      ws.pause();
    }
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      setImmediate(() => this.#flush());
    }
  }

  /**
   * Commits every queued frame in one transaction, then acks each and publishes its alerts. One group
   * commit runs at a time; frames arriving meanwhile make the next group.
   */
  #flush(): void {
    this.#flushScheduled = false;
    if (this.#committing || this.#queue.length === 0) return;
    // A group is capped: one huge group would keep every agent waiting for its acks (their windows
    // full, this thread idle) while the writer works through it; smaller groups keep acks flowing.
    let take = 0;
    for (let records = 0; take < this.#queue.length && records < MAX_GROUP_RECORDS; take++) records += this.#queue[take]!.commit?.records.length ?? 0;
    const queue = this.#queue.slice(0, take);
    this.#queue = this.#queue.slice(take);
    const commits = queue.flatMap((entry) => (entry.commit ? [entry.commit] : []));
    this.#committing = true;
    const done = (error?: Error) => {
      this.#committing = false;
      if (error) this.#failed(queue, error);
      else this.#acked(queue);
      this.#flush();
    };
    let result: Promise<void> | void;
    try {
      result = this.#commitMany(commits);
    } catch (error) {
      done(error as Error);
      return;
    }
    if (result instanceof Promise) result.then(() => done(), (error: Error) => done(error));
    else done();
  }

  #acked(queue: QueuedFrame[]): void {
    for (const { runtime, ws, commit, fresh, alerts } of queue) {
      if (commit) {
        runtime.ackedSeq = commit.state.ackedSeq;
        runtime.lastHash = commit.state.lastHash;
        this.counters.records += commit.records.length;
        this.#release(runtime, commit.records.length);
      }
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'ack', stream: runtime.stream, seq: runtime.ackedSeq }));
      for (const record of fresh) if (isAlert(record)) this.#onAlert(runtime.agentId, record as unknown as Record<string, unknown>);
      for (const alert of alerts) this.#onAlert(runtime.agentId, { collectorAlert: alert });
    }
  }

  /**
   * Nothing of the group is stored: its streams are forgotten (reloaded from the store on the next
   * connection), frames queued after it for those streams are dropped unacked (they build on it), and
   * the connections are closed, so the agents resend from what is stored.
   */
  /** Commits caught up with a held stream: read it again. */
  #release(runtime: StreamRuntime, records: number): void {
    runtime.queued -= records;
    if (runtime.held && runtime.queued <= MAX_QUEUED_PER_STREAM / 2) {
      runtime.held = false;
      runtime.connection?.resume();
    }
  }

  #failed(queue: QueuedFrame[], error: Error): void {
    this.counters.commitFailures++;
    this.#onError(error);
    const streams = new Set(queue.map((entry) => entry.runtime.stream));
    this.#queue = this.#queue.filter((entry) => !streams.has(entry.runtime.stream));
    for (const { runtime } of queue) {
      if (this.#streams.get(runtime.stream) === runtime) this.#streams.delete(runtime.stream);
      // Forgotten before the close completes: a frame already on the wire must not build on the failed records.
      const connection = runtime.connection;
      runtime.connection = undefined;
      connection?.close(1011, 'the collector could not store this batch; resend');
    }
  }

  /**
   * Buffer_dropped records close the open gaps they cover. The outbox declares each flush's drops on
   * its own, so a gap seen across a long outage is covered by several adjoining declarations: they
   * must form one run over the gap, linked hash to hash, and meet the chain at both of its ends.
   */
  #declare(runtime: StreamRuntime, d: Declaration, declaredOut: number[], alerts: CollectorAlert[], now: number): void {
    runtime.declarations.set(d.fromSeq, d);
    if (runtime.declarations.size > MAX_DECLARATIONS) runtime.declarations.delete(runtime.declarations.keys().next().value!);
    for (const gap of runtime.openGaps.values()) {
      if (declaredOut.includes(gap.fromSeq)) continue;
      const run = coveringRun(runtime.declarations, gap);
      if (!run) continue;
      const first = run[0]!;
      const last = run.at(-1)!;
      const mismatch = (first.fromSeq === gap.fromSeq && first.fromPrev !== gap.beforeHash)
        || (last.toSeq === gap.toSeq && last.toHash !== gap.afterPrev)
        || run.some((x, i) => i > 0 && run[i - 1]!.toHash !== x.fromPrev);
      if (!mismatch) {
        declaredOut.push(gap.fromSeq);
        this.counters.gapsDeclared++;
        continue;
      }
      alerts.push(collectorAlert('chain_broken', runtime, now, `stream ${runtime.stream}: the declarations of dropped seqs ${first.fromSeq}–${last.toSeq} do not match the chain around the gap ${gap.fromSeq}–${gap.toSeq}`, { gap: [gap.fromSeq, gap.toSeq], declared: run.map((x) => [x.fromSeq, x.toSeq]) }));
      this.counters.chainBroken++;
    }
  }

  #broken(runtime: StreamRuntime, reason: 'hash_mismatch' | 'broken_link', seq: number, message: string, now: number): Rejection {
    this.counters.chainBroken++;
    if (now - runtime.brokenAlertAt >= 60_000) {
      runtime.brokenAlertAt = now;
      const alert = collectorAlert('chain_broken', runtime, now, `stream ${runtime.stream}: ${message}`, { seq, reason });
      this.#store.addAlert(alert);
      this.#onAlert(runtime.agentId, { collectorAlert: alert });
    }
    return new Rejection(reason, message);
  }

  /** Token bucket per connection: past the rate, the socket stops being read until the bucket refills. */
  #throttle(ws: WebSocket, bucket: { tokens: number; at: number }, records: number): void {
    const now = this.#now();
    const { maxRecordsPerSec, burstRecords } = this.#options;
    bucket.tokens = Math.min(burstRecords, bucket.tokens + ((now - bucket.at) * maxRecordsPerSec) / 1000) - records;
    bucket.at = now;
    if (bucket.tokens >= 0) return;
    this.counters.throttled++;
    // ws.pause() holds reading (its receiver resumes a raw socket paused behind its back).
    ws.pause();
    setTimeout(() => ws.resume(), Math.ceil((-bucket.tokens * 1000) / maxRecordsPerSec)).unref();
  }
}

interface Declaration {
  fromSeq: number;
  toSeq: number;
  fromPrev: string | undefined;
  toHash: string | undefined;
}

/** Adjoining declarations that together cover the gap, in order, or undefined while some part is missing. */
function coveringRun(declarations: Map<number, Declaration>, gap: { fromSeq: number; toSeq: number }): Declaration[] | undefined {
  let start: Declaration | undefined;
  for (const d of declarations.values()) if (d.fromSeq <= gap.fromSeq && d.toSeq >= gap.fromSeq) start = d;
  if (!start) return undefined;
  const run = [start];
  while (run.at(-1)!.toSeq < gap.toSeq) {
    const next = declarations.get(run.at(-1)!.toSeq + 1);
    if (!next || next.toSeq < next.fromSeq) return undefined;
    run.push(next);
  }
  return run;
}

function declared(record: WireRecord): Declaration | undefined {
  if (isAlert(record) || record.category !== 'agent' || record.fields.Action !== 'buffer_dropped') return undefined;
  const { FromSeq, ToSeq, FromPrev, ToHash } = record.fields;
  // An empty or reversed range declares nothing (and would loop a covering run).
  if (FromSeq === undefined || ToSeq === undefined || ToSeq < FromSeq) return undefined;
  return { fromSeq: FromSeq, toSeq: ToSeq, fromPrev: FromPrev, toHash: ToHash };
}

/** A refused frame's first problem, with where it is: what the close reason says. */
function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  return issue ? `${issue.path.join('.') || '(frame)'}: ${issue.message}` : 'invalid';
}

function toRow(record: WireRecord, body: string): IngestRecord {
  const alert = isAlert(record);
  const sessionId = alert ? record.sessionId : (record.fields as { SessionId?: unknown }).SessionId;
  return {
    seq: record.seq,
    kind: alert ? 'alert' : 'event',
    id: record.id,
    time: record.time,
    hostId: record.host?.id ?? null,
    category: alert ? null : record.category,
    sessionId: typeof sessionId === 'string' ? sessionId : null,
    hash: record.hash,
    prev: record.prev,
    body,
  };
}

function collectorAlert(type: CollectorAlert['type'], runtime: { agentId: string; stream: string }, now: number, summary: string, details: unknown): CollectorAlert {
  return { id: uuidv7(), time: new Date(now).toISOString(), type, agentId: runtime.agentId, stream: runtime.stream, summary, details: JSON.stringify(details) };
}
