// Seqs left out of a stream, and the agent's buffer_dropped declarations that can account for them: the
// one rule for a gap in the store (collector/verify.ts) and in an export — covered, the hashes meeting the chain.

/** A buffer_dropped record: the seqs it says were dropped and the chain values around them. */
export interface Declaration {
  /** The seq of the declaring record. */
  seq: number;
  fromSeq: number;
  toSeq: number;
  fromPrev: string | undefined;
  toHash: string | undefined;
}

/** Seqs missing from a stream, with the chain values on both sides. */
export interface MissingRange {
  from: number;
  to: number;
  /** The hash of the record before the range (GENESIS when it starts at seq 1). */
  beforeHash: string | undefined;
  /** The `prev` of the record after it. */
  afterPrev: string | undefined;
}

/** The declaration a record makes, if it is an agent's buffer_dropped event. */
export function declarationOf(seq: number, record: unknown): Declaration | undefined {
  if (typeof record !== 'object' || record === null) return undefined;
  const body = record as Record<string, unknown>;
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

/** `seq 4` or `seqs 2–3`. */
export function seqsText(from: number, to: number): string {
  return from === to ? `seq ${from}` : `seqs ${from}–${to}`;
}

/**
 * Undefined when declarations cover all of the range and their hashes meet the chain (FromPrev at its
 * start, ToHash at its end, ToHash to FromPrev where two abut inside it); else the lowest seq that fails
 * and why; `covered` when declarations cover it but their hashes do not meet. `where` says where the
 * declarations were looked for ("in the bundle", "in the store").
 */
export function undeclared(range: MissingRange, declarations: readonly Declaration[], where: string): { seq: number; reason: string; covered: boolean } | undefined {
  const covering = declarations
    .filter((d) => d.fromSeq <= range.to && d.toSeq >= range.from)
    .sort((a, b) => a.fromSeq - b.fromSeq || b.toSeq - a.toSeq);
  let next = range.from;
  for (const d of covering) {
    if (d.fromSeq > next) break;
    next = Math.max(next, d.toSeq + 1);
  }
  if (next <= range.to) {
    const end = Math.min(range.to, (covering.find((d) => d.fromSeq > next)?.fromSeq ?? range.to + 1) - 1);
    const within = next === range.from && end === range.to ? '' : ` (of ${seqsText(range.from, range.to)})`;
    return { seq: next, reason: `no buffer_dropped declaration ${where} covers ${seqsText(next, end)}${within}`, covered: false };
  }

  const failures: Array<{ seq: number; reason: string }> = [];
  for (const d of covering) {
    const by = `buffer_dropped at seq ${d.seq} declares ${seqsText(d.fromSeq, d.toSeq)}`;
    if (d.fromSeq === range.from && d.fromPrev !== range.beforeHash) {
      failures.push({ seq: range.from, reason: `${by} with FromPrev ${d.fromPrev ?? '(none)'}, but the hash before them is ${range.beforeHash ?? '(not there)'}` });
    }
    if (d.toSeq === range.to && d.toHash !== range.afterPrev) {
      failures.push({ seq: range.to + 1, reason: `${by} with ToHash ${d.toHash ?? '(none)'}, but seq ${range.to + 1} has prev ${range.afterPrev ?? '(not there)'}` });
    }
    for (const e of covering) {
      if (e.fromSeq === d.toSeq + 1 && e.fromSeq <= range.to && d.toHash !== e.fromPrev) {
        failures.push({ seq: e.fromSeq, reason: `${by} ending with ToHash ${d.toHash ?? '(none)'}, but buffer_dropped at seq ${e.seq} starts ${seqsText(e.fromSeq, e.toSeq)} with FromPrev ${e.fromPrev ?? '(none)'}` });
      }
    }
  }
  const first = failures.sort((a, b) => a.seq - b.seq)[0];
  return first && { ...first, covered: true };
}
