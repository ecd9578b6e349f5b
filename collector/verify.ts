// `omwatch-collector verify` (design.md §6): recomputes every stored stream's hash chain and names the
// first broken record; seqs missing from a stream pass only where the agent declared them dropped.
import { declarationOf, undeclared, type Declaration, type MissingRange } from './export/gaps.ts';
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
   * A missing range passes when declarations cover all of it and their hashes meet the chain (the rule an
   * export's verify applies too, export/gaps.ts); covered with hashes that do not meet still counts as
   * declared, and fails the stream.
   */
  #checkMissing(range: MissingRange): boolean {
    const failure = undeclared(range, this.#declarations, 'in the store');
    if (failure) this.#fail(failure.seq, `${failure.covered ? 'declaration hash mismatch' : 'undeclared gap'}: ${failure.reason}`);
    return failure === undefined || failure.covered;
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
