// `omwatch-collector verify` (design.md §6): recomputes every stored stream's hash chain and names the
// first broken record; seqs missing from a stream pass only where the agent declared them dropped.
import { chainHash, GENESIS } from './protocol/chain.ts';
import type { Store, StoredRecord, StreamState } from './store/types.ts';

export interface StreamVerdict {
  stream: string;
  agentId: string;
  /** Records stored for the stream. */
  records: number;
  /** The lowest and highest stored seq; 0 when the stream holds none. */
  firstSeq: number;
  lastSeq: number;
  /** Ranges of missing seqs that buffer_dropped declarations of the stream cover, in order. */
  declaredGaps: Array<[number, number]>;
  ok: boolean;
  /** The lowest seq at which the chain fails, and exactly how. */
  firstBroken?: { seq: number; reason: string };
}

/** A buffer_dropped record: the seqs it says were dropped and the chain values around them. */
interface Declaration {
  /** The seq of the declaring record. */
  seq: number;
  fromSeq: number;
  toSeq: number;
  fromPrev: string | undefined;
  toHash: string | undefined;
}

interface MissingRange {
  from: number;
  to: number;
  /** The hash of the record before the range (GENESIS when it starts at seq 1). */
  beforeHash: string;
  /** The `prev` of the record after it. */
  afterPrev: string;
}

/**
 * Verdicts for every stream of the store, in the store's stream order. Reads, never writes, and may run
 * while ingest commits: stream states are read before the records, so records can only be newer.
 */
export function verifyStore(store: Store): StreamVerdict[] {
  const states = store.streams();
  const stateOf = new Map(states.map((state) => [state.stream, state]));
  const walks = new Map<string, StreamWalk>();
  // One pass over all records: they come grouped by stream, in seq order.
  let walk: StreamWalk | undefined;
  for (const record of store.records()) {
    if (walk?.stream !== record.stream) {
      walk = new StreamWalk(record.stream, record.agentId, stateOf.get(record.stream));
      walks.set(record.stream, walk);
    }
    walk.add(record);
  }
  const verdicts: StreamVerdict[] = [];
  for (const state of states) {
    verdicts.push((walks.get(state.stream) ?? new StreamWalk(state.stream, state.agentId, state)).finish());
    walks.delete(state.stream);
  }
  // Streams claimed after the states were read: judged on their records alone.
  for (const late of walks.values()) verdicts.push(late.finish());
  return verdicts;
}

class StreamWalk {
  readonly stream: string;
  readonly agentId: string;
  readonly #state: StreamState | undefined;
  /** The stored hash of the record at the state's acked seq, once walked past. */
  #hashAtMark: string | undefined;
  #count = 0;
  #firstSeq = 0;
  #lastSeq = 0;
  /** The stored hash of the last record walked: what the next record's `prev` must be. */
  #lastHash = GENESIS;
  #missing: MissingRange[] = [];
  #declarations: Declaration[] = [];
  #broken: { seq: number; reason: string } | undefined;

  constructor(stream: string, agentId: string, state: StreamState | undefined) {
    this.stream = stream;
    this.agentId = state?.agentId ?? agentId;
    this.#state = state;
  }

  add(record: StoredRecord): void {
    const { seq } = record;
    this.#count++;
    if (this.#firstSeq === 0) this.#firstSeq = seq;

    const body = parseBody(record.body);
    if (typeof body === 'string') {
      this.#fail(seq, body);
    } else {
      this.#checkRecord(record, body);
      const declaration = declarationOf(seq, body);
      if (declaration) this.#declarations.push(declaration);
    }

    if (seq === this.#lastSeq + 1) {
      if (record.prev !== this.#lastHash) {
        const before = seq === 1 ? 'GENESIS' : `the hash of seq ${seq - 1}`;
        this.#fail(seq, `broken link: expected prev ${this.#lastHash} (${before}), got ${record.prev}`);
      }
    } else {
      this.#missing.push({ from: this.#lastSeq + 1, to: seq - 1, beforeHash: this.#lastHash, afterPrev: record.prev });
    }
    if (seq === this.#state?.ackedSeq) this.#hashAtMark = record.hash;
    // The stored hash, not a recomputed one: an edited record is reported once, not again at its successor.
    this.#lastHash = record.hash;
    this.#lastSeq = seq;
  }

  finish(): StreamVerdict {
    const declaredGaps: Array<[number, number]> = [];
    for (const range of this.#missing) {
      if (this.#checkMissing(range)) declaredGaps.push([range.from, range.to]);
    }
    if (this.#state) this.#checkState(this.#state);
    return {
      stream: this.stream,
      agentId: this.agentId,
      records: this.#count,
      firstSeq: this.#firstSeq,
      lastSeq: this.#lastSeq,
      declaredGaps,
      ok: this.#broken === undefined,
      ...(this.#broken ? { firstBroken: this.#broken } : {}),
    };
  }

  /** The stored columns must be the body's, and the body must hash to what it carries. */
  #checkRecord(record: StoredRecord, body: Record<string, unknown>): void {
    const { seq } = record;
    if (body['stream'] !== this.stream || body['seq'] !== seq) {
      this.#fail(seq, `body names stream ${shown(body['stream'])} seq ${shown(body['seq'])}, stored as stream ${this.stream} seq ${seq}`);
      return;
    }
    if (body['hash'] !== record.hash) {
      this.#fail(seq, `stored hash ${record.hash} differs from the body's hash ${shown(body['hash'])}`);
      return;
    }
    if (body['prev'] !== record.prev) {
      this.#fail(seq, `stored prev ${record.prev} differs from the body's prev ${shown(body['prev'])}`);
      return;
    }
    let computed: string;
    try {
      computed = chainHash(body);
    } catch (error) {
      this.#fail(seq, `body cannot be hashed: ${error instanceof Error ? error.message : String(error)}`);
      return;
    }
    if (computed !== record.hash) this.#fail(seq, `hash mismatch: the body hashes to ${computed}, the record carries ${record.hash}`);
  }

  /**
   * A missing range passes when declarations cover all of it and their hashes meet the chain: FromPrev
   * at its start, ToHash at its end, and ToHash to FromPrev where two declarations abut inside it.
   */
  #checkMissing(range: MissingRange): boolean {
    const covering = this.#declarations
      .filter((d) => d.fromSeq <= range.to && d.toSeq >= range.from)
      .sort((a, b) => a.fromSeq - b.fromSeq || b.toSeq - a.toSeq);
    let next = range.from;
    for (const d of covering) {
      if (d.fromSeq > next) break;
      next = Math.max(next, d.toSeq + 1);
    }
    if (next <= range.to) {
      const end = Math.min(range.to, (covering.find((d) => d.fromSeq > next)?.fromSeq ?? range.to + 1) - 1);
      const within = next === range.from && end === range.to ? '' : ` (of missing ${range.from}–${range.to})`;
      this.#fail(next, `undeclared gap ${next}–${end}${within}: no buffer_dropped declaration covers it`);
      return false;
    }

    for (const d of covering) {
      if (d.fromSeq === range.from && d.fromPrev !== range.beforeHash) {
        this.#fail(
          range.from,
          `declaration hash mismatch: buffer_dropped at seq ${d.seq} gives FromPrev ${d.fromPrev ?? '(none)'} for seqs ${d.fromSeq}–${d.toSeq}, but the hash before the gap is ${range.beforeHash}`,
        );
      }
      if (d.toSeq === range.to && d.toHash !== range.afterPrev) {
        this.#fail(
          range.to + 1,
          `declaration hash mismatch: buffer_dropped at seq ${d.seq} gives ToHash ${d.toHash ?? '(none)'} for seqs ${d.fromSeq}–${d.toSeq}, but seq ${range.to + 1} has prev ${range.afterPrev}`,
        );
      }
      for (const e of covering) {
        if (e.fromSeq === d.toSeq + 1 && e.fromSeq <= range.to && d.toHash !== e.fromPrev) {
          this.#fail(
            e.fromSeq,
            `declaration hash mismatch: buffer_dropped at seq ${d.seq} ends seqs ${d.fromSeq}–${d.toSeq} with ToHash ${d.toHash ?? '(none)'}, but buffer_dropped at seq ${e.seq} starts seqs ${e.fromSeq}–${e.toSeq} with FromPrev ${e.fromPrev ?? '(none)'}`,
          );
        }
      }
    }
    return true;
  }

  /**
   * Records cut from the end of a stream leave no gap to find; the acked mark, committed with them, still
   * names the last one and its hash. Records past the mark are ones committed since the state was read.
   */
  #checkState(state: StreamState): void {
    const { ackedSeq, lastHash } = state;
    if (ackedSeq > this.#lastSeq) {
      this.#fail(this.#lastSeq + 1, `records ${this.#lastSeq + 1}–${ackedSeq} missing: the stream was acked up to seq ${ackedSeq}`);
    } else if (ackedSeq === 0) {
      if (lastHash !== GENESIS) this.#fail(1, `the stream's state has hash ${lastHash} at seq 0, not GENESIS`);
    } else if (this.#hashAtMark === undefined) {
      this.#fail(ackedSeq, `record ${ackedSeq} missing: the stream was acked up to it`);
    } else if (this.#hashAtMark !== lastHash) {
      this.#fail(ackedSeq, `the stream's acked hash ${lastHash} differs from the hash of seq ${ackedSeq}, ${this.#hashAtMark}`);
    }
  }

  #fail(seq: number, reason: string): void {
    if (this.#broken === undefined || seq < this.#broken.seq) this.#broken = { seq, reason };
  }
}

/** A value read from a body, for a reason: as is when plain and short, else JSON-encoded and cut. */
function shown(value: unknown): string {
  if (typeof value === 'number' || (typeof value === 'string' && /^[\x20-\x7e]{0,80}$/.test(value))) return String(value);
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}

/** The body as a JSON object, or why it is not one. */
function parseBody(text: string): Record<string, unknown> | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return `body is not JSON: ${error instanceof Error ? error.message : String(error)}`;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'body is not a JSON object';
  return value as Record<string, unknown>;
}

function declarationOf(seq: number, body: Record<string, unknown>): Declaration | undefined {
  if (body['category'] !== 'agent') return undefined;
  const fields = body['fields'];
  if (typeof fields !== 'object' || fields === null) return undefined;
  const { Action, FromSeq, ToSeq, FromPrev, ToHash } = fields as Record<string, unknown>;
  if (Action !== 'buffer_dropped' || !Number.isSafeInteger(FromSeq) || !Number.isSafeInteger(ToSeq)) return undefined;
  return {
    seq,
    fromSeq: FromSeq as number,
    toSeq: ToSeq as number,
    fromPrev: typeof FromPrev === 'string' ? FromPrev : undefined,
    toHash: typeof ToHash === 'string' ? ToHash : undefined,
  };
}
