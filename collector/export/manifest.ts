// The manifest of an export bundle (docs/auditor.md): what the bundle's writer promises and its verifier
// checks — the SHA-256 of every file, the chain heads each records file covers, the filter, and when.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { canonicalJson } from '../protocol/chain.ts';

export const MANIFEST_FILE = 'manifest.json';

export const EXPORT_FORMATS = ['jsonl', 'csv', 'asciicast'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);
const count = z.number().int().nonnegative();
const seqNumber = z.number().int().positive();
// Relative, `/`-separated, no part starting with a dot: a manifest cannot name a file outside its bundle.
const bundlePath = z.string().max(300).regex(/^[A-Za-z0-9_][A-Za-z0-9._-]*(?:\/[A-Za-z0-9_][A-Za-z0-9._-]*)*$/);

/**
 * What a file of the bundle holds: `records` JSON lines of chained records, `collector-alerts` JSON lines
 * of the collector's own alerts (not chained), and files made from those: `csv` rows, `cast` recordings.
 */
export const FILE_ROLES = ['records', 'collector-alerts', 'csv', 'cast'] as const;

export const FileEntrySchema = z.strictObject({
  path: bundlePath,
  role: z.enum(FILE_ROLES),
  sha256: sha256Hex,
  bytes: count,
});
export type FileEntry = z.infer<typeof FileEntrySchema>;

/**
 * One stream's records in one records file: its first and last seq exported, the `prev` of the first and
 * the hash of the last (where it joins the rest of the chain), and the seqs between them not exported.
 */
export const StreamHeadSchema = z.strictObject({
  file: bundlePath,
  agentId: z.string(),
  stream: z.string(),
  records: z.number().int().positive(),
  firstSeq: seqNumber,
  firstPrev: z.string(),
  lastSeq: seqNumber,
  lastHash: z.string(),
  /** True when every seq from firstSeq to lastSeq is exported (`missing` is then empty). */
  contiguous: z.boolean(),
  /**
   * Seq ranges [from, to] between firstSeq and lastSeq the export leaves out: drops its agent declared,
   * or, in a filtered export, records outside the filter. verify --export holds a range of an export of
   * everything to a buffer_dropped declaration in the bundle; one of a filtered export it cannot check
   * offline (it cannot see the records left out), only against the store (--data).
   */
  missing: z.array(z.tuple([seqNumber, seqNumber])),
});
export type StreamHead = z.infer<typeof StreamHeadSchema>;

/** A recorded shell session of an asciicast bundle: its recording and the records it was made from. */
export const SessionEntrySchema = z.strictObject({
  id: z.string(),
  cast: bundlePath,
  records: bundlePath,
  /** Whether the session's end is among its records (if not, it was live or not yet delivered). */
  ended: z.boolean(),
  /** Recording chunks the store did not hold: the cast lacks them. */
  /** Chunk numbers the store lacked, as inclusive ranges. */
  missingChunks: z.array(z.tuple([count, count])).max(1_000_000),
});
export type SessionEntry = z.infer<typeof SessionEntrySchema>;

export const ExportFilterSchema = z.strictObject({
  since: z.iso.datetime().optional(),
  until: z.iso.datetime().optional(),
  hostId: z.string().optional(),
  sessionId: z.string().optional(),
});
export type BundleFilter = z.infer<typeof ExportFilterSchema>;

export const ManifestSchema = z.strictObject({
  omwatchExport: z.literal(1),
  collector: z.strictObject({ version: z.string() }),
  exportedAt: z.iso.datetime(),
  format: z.enum(EXPORT_FORMATS),
  filter: ExportFilterSchema,
  records: count,
  collectorAlerts: count,
  files: z.array(FileEntrySchema),
  streams: z.array(StreamHeadSchema),
  sessions: z.array(SessionEntrySchema),
  /** SHA-256 of the RFC 8785 canonical JSON of the manifest without `digest`. */
  digest: sha256Hex,
});
export type Manifest = z.infer<typeof ManifestSchema>;

/**
 * The manifest's digest. It shows a manifest changed after export (a corrupted copy, a hand edit); it
 * proves no authorship, since anyone can recompute it: what ties the bundle to the collector's chain is
 * the heads, which the collector's own store (or an earlier export) can confirm.
 */
export function manifestDigest(manifest: Readonly<Record<string, unknown>>): string {
  const { digest: _ignored, ...rest } = manifest;
  return createHash('sha256').update(canonicalJson(rest)).digest('hex');
}

/** Collects the heads of the streams in one records file, from its records in (stream, seq) order. */
export class HeadTracker {
  readonly file: string;
  readonly #heads: StreamHead[] = [];
  #current: StreamHead | undefined;

  constructor(file: string) {
    this.file = file;
  }

  add(agentId: string, stream: string, seq: number, hash: string, prev: string): void {
    const head = this.#current;
    if (head?.stream !== stream) {
      if (this.#heads.some((h) => h.stream === stream)) throw new Error(`export: ${this.file}: stream ${stream} again after other streams; records must come in (stream, seq) order`);
      this.#current = { file: this.file, agentId, stream, records: 1, firstSeq: seq, firstPrev: prev, lastSeq: seq, lastHash: hash, contiguous: true, missing: [] };
      this.#heads.push(this.#current);
      return;
    }
    if (seq <= head.lastSeq) throw new Error(`export: ${this.file}: stream ${stream} seq ${seq} after seq ${head.lastSeq}; records must come in (stream, seq) order`);
    if (seq > head.lastSeq + 1) {
      head.missing.push([head.lastSeq + 1, seq - 1]);
      head.contiguous = false;
    }
    head.records++;
    head.lastSeq = seq;
    head.lastHash = hash;
  }

  heads(): StreamHead[] {
    return this.#heads;
  }
}
