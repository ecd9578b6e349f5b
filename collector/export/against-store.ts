// `verify --export DIR --data STORE`: a bundle's streams read beside the collector's store. Every exported
// record must be the store's, and every seq the bundle leaves out outside its filter there, or a declared gap.
import { GENESIS } from '../protocol/chain.ts';
import type { RecordFilter, Store, StoredRecord } from '../store/types.ts';
import { declarationOf, seqsText, undeclared, type Declaration } from './gaps.ts';

export interface StoreStreamOptions {
  /** What the export read for this records file: the bundle's filter, or one session's records. */
  filter: RecordFilter;
  /** An export of everything: every stored seq before the first exported one was the export's to take. */
  everything: boolean;
}

/**
 * One stream of one records file against the store, told the file's records in seq order. The store's
 * stream is read once, from seq 1 in an export of everything, else from the first exported seq (and the
 * records the filter selects before it, which the export would have taken: a stream's seqs are stored in
 * order, never filled in later). Seqs past the last exported one are not judged: they may have arrived since.
 */
export class StoreStreamCheck {
  readonly #store: Store;
  readonly #stream: string;
  readonly #fail: (seq: number, reason: string) => void;
  readonly #all: Cursor;
  /** The records the filter selects; none in an export of everything, where every record is selected. */
  readonly #selected: Cursor | undefined;
  /** The next seq not yet accounted for, and the store's hash of the one before it. */
  #next: number;
  #hashBefore: string | undefined;
  #declarations: Declaration[] | undefined;

  constructor(store: Store, stream: string, firstSeq: number, options: StoreStreamOptions, fail: (seq: number, reason: string) => void) {
    this.#store = store;
    this.#stream = stream;
    this.#fail = fail;
    this.#next = options.everything ? 1 : firstSeq;
    this.#hashBefore = this.#next === 1 ? GENESIS : undefined;
    this.#all = new Cursor(store.records({ stream, afterSeq: this.#next - 1 }));
    this.#selected = options.everything ? undefined : new Cursor(store.records({ ...options.filter, stream }));
    for (let r = this.#selected?.peek(); r !== undefined && r.seq < firstSeq; r = this.#selected!.peek()) {
      this.#selected!.take();
      fail(r.seq, `seq ${r.seq} of stream ${stream} is in the store and within the export's filter, yet the bundle leaves it out: its first seq of the stream is ${firstSeq}`);
    }
  }

  /** An exported record of the stream; the seqs since the last one told are left out of the bundle. */
  exported(seq: number, agentId: string, hash: string | undefined): void {
    if (seq < this.#next) return;
    this.#leftOut(seq - 1);
    const stored = this.#all.peek()?.seq === seq ? this.#all.take() : undefined;
    this.#selected?.skipTo(seq + 1);
    if (!stored) {
      this.#fail(seq, `the store holds no seq ${seq} of stream ${this.#stream}, yet the bundle does`);
    } else if (stored.hash !== hash) {
      this.#fail(seq, `the store's seq ${seq} of stream ${this.#stream} has hash ${stored.hash}, the bundle's ${hash ?? '(none)'}`);
    } else if (stored.agentId !== agentId) {
      this.#fail(seq, `the store has stream ${this.#stream} from agent ${stored.agentId}, the bundle from ${agentId}`);
    }
    this.#hashBefore = stored?.hash;
    this.#next = seq + 1;
  }

  /** Frees the store's reads; call it once the stream's records are told, or on the way out of a failure. */
  close(): void {
    this.#all.close();
    this.#selected?.close();
  }

  /** Seqs #next…to are not in the bundle: each stored one must be outside the filter, each other one declared dropped. */
  #leftOut(to: number): void {
    let expected = this.#next;
    for (let r = this.#all.peek(); r !== undefined && r.seq <= to; r = this.#all.peek()) {
      this.#all.take();
      if (r.seq > expected) this.#absent(expected, r.seq - 1, r.prev);
      this.#selected?.skipTo(r.seq);
      if (!this.#selected || this.#selected.peek()?.seq === r.seq) {
        this.#fail(r.seq, `seq ${r.seq} of stream ${this.#stream} is in the store and within the export's filter, yet the bundle leaves it out (${seqsText(this.#next, to)})`);
      }
      this.#hashBefore = r.hash;
      expected = r.seq + 1;
    }
    if (expected <= to) this.#absent(expected, to, this.#all.peek()?.seq === to + 1 ? this.#all.peek()!.prev : undefined);
  }

  /** Seqs neither in the bundle nor in the store: they pass only as a gap the agent declared. */
  #absent(from: number, to: number, afterPrev: string | undefined): void {
    this.#declarations ??= this.#readDeclarations();
    const failure = undeclared({ from, to, beforeHash: this.#hashBefore, afterPrev }, this.#declarations, 'in the store');
    if (failure) {
      this.#fail(failure.seq, `${seqsText(from, to)} of stream ${this.#stream}, left out of the bundle, ${from === to ? 'is' : 'are'} not in the store either, and ${failure.reason}`);
    }
  }

  #readDeclarations(): Declaration[] {
    const found: Declaration[] = [];
    for (const r of this.#store.records({ stream: this.#stream, category: 'agent' })) {
      let body: unknown;
      try {
        body = JSON.parse(r.body);
      } catch {
        // A body that is not JSON declares nothing; verify --data names it.
        continue;
      }
      const declaration = declarationOf(r.seq, body);
      if (declaration) found.push(declaration);
    }
    return found;
  }
}

/** A store read looked at one record ahead. */
class Cursor {
  readonly #rows: IterableIterator<StoredRecord>;
  #ahead: StoredRecord | undefined;
  #done = false;

  constructor(rows: IterableIterator<StoredRecord>) {
    this.#rows = rows;
  }

  peek(): StoredRecord | undefined {
    if (this.#ahead === undefined && !this.#done) {
      const next = this.#rows.next();
      if (next.done) this.#done = true;
      else this.#ahead = next.value;
    }
    return this.#ahead;
  }

  take(): StoredRecord | undefined {
    const row = this.peek();
    this.#ahead = undefined;
    return row;
  }

  /** Passes the records before this seq. */
  skipTo(seq: number): void {
    while ((this.peek()?.seq ?? Infinity) < seq) this.take();
  }

  close(): void {
    this.#done = true;
    this.#ahead = undefined;
    this.#rows.return?.();
  }
}
