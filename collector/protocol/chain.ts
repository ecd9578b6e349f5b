// The evidence chain of design.md §6: every record of a stream (event or alert) carries
// `hash = SHA-256(prev ‖ canonical JSON of the record without hash)`, and `prev` is the hash of the
// record before it in the stream (GENESIS for the first). Canonical JSON is RFC 8785 (JCS), so any
// implementation, in any language, recomputes the same hashes.
import { createHash } from 'node:crypto';
import canonicalizeModule from 'canonicalize';

// The package is CommonJS whose typings declare an ES default export; at run time the default is the function.
const canonicalize = canonicalizeModule as unknown as (value: unknown) => string | undefined;

/** The `prev` of a stream's first record. */
export const GENESIS = '0'.repeat(64);

/** The hash a record must carry, given its fields (its own `hash`, if present, is left out). */
export function chainHash(record: Readonly<Record<string, unknown>>): string {
  const { hash: _ignored, ...rest } = record;
  const prev = typeof rest['prev'] === 'string' ? rest['prev'] : '';
  return createHash('sha256').update(prev).update(canonicalJson(rest)).digest('hex');
}

/** RFC 8785 canonical JSON of a JSON value. */
export function canonicalJson(value: unknown): string {
  const text = canonicalize(value);
  if (text === undefined) throw new TypeError('value has no JSON form');
  return text;
}
