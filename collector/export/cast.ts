// A session's recording rebuilt from its exported records alone, the same way when the bundle is
// written and when it is verified, so a bundle's .cast file is checked against the chunks it came from.
import type { RecordEntry } from '../export.ts';
import { sessionCast } from '../sessions.ts';
import type { RecordFilter, Store, StoredRecord } from '../store/types.ts';

/** The filter keys the view below answers; sessionCast asks for sessionId and kind. */
const ANSWERED = new Set(['sessionId', 'kind', 'category']);

/**
 * sessionCast over exported records instead of a store. The store columns it filters on (kind, category,
 * sessionId) are derived from each record as ingest derives them, so both sides see the same rows.
 */
export function castOf(sessionId: string, entries: readonly RecordEntry[]): ReturnType<typeof sessionCast> {
  const rows = entries.map(storedView);
  const view: Pick<Store, 'records'> = {
    records(filter: RecordFilter = {}) {
      const asked = Object.keys(filter).filter((key) => !ANSWERED.has(key));
      // A sessionCast that filters on more would otherwise get rows it did not ask for, and a wrong cast.
      if (asked.length > 0) throw new Error(`castOf: the exported-records view cannot filter on ${asked.join(', ')}`);
      return rows
        .filter((row) => (filter.sessionId === undefined || row.sessionId === filter.sessionId)
          && (filter.kind === undefined || row.kind === filter.kind)
          && (filter.category === undefined || row.category === filter.category))
        .values();
    },
  };
  return sessionCast(view, sessionId);
}

/** What the store's columns hold for an exported record: kind, category and session as ingest sets them. */
export function storedView(entry: RecordEntry): StoredRecord {
  const record = (typeof entry.record === 'object' && entry.record !== null ? entry.record : {}) as Record<string, unknown>;
  const alert = 'rule' in record;
  const fields = (typeof record['fields'] === 'object' && record['fields'] !== null ? record['fields'] : {}) as Record<string, unknown>;
  const sessionId = alert ? record['sessionId'] : fields['SessionId'];
  const host = record['host'] as { id?: unknown } | undefined;
  return {
    agentId: entry.agentId,
    stream: entry.stream,
    seq: entry.seq,
    receivedAt: entry.receivedAt,
    kind: alert ? 'alert' : 'event',
    id: String(record['id']),
    time: String(record['time']),
    hostId: typeof host?.id === 'string' ? host.id : null,
    category: !alert && typeof record['category'] === 'string' ? record['category'] : null,
    sessionId: typeof sessionId === 'string' ? sessionId : null,
    hash: String(record['hash']),
    prev: String(record['prev']),
    body: JSON.stringify(entry.record),
  };
}

/**
 * Windows' reserved device names, in any case, alone or before a dot: `nul.cast` and `aux.txt.jsonl` are
 * the device too, so writing one on Windows (or a copy of the bundle there) writes to the device, not a file.
 */
const WINDOWS_DEVICE = /^(?:con|prn|aux|nul|com[0-9]|lpt[0-9])(?:\.|$)/i;

/**
 * A file name for a session id (the agent's, so untrusted): as is when plain, else cleaned and made
 * unique by a hash. A Windows device name is not plain: it gets the hash, and its dots go.
 */
export function sessionFileName(sessionId: string, hash: (text: string) => string): string {
  if (/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(sessionId) && !WINDOWS_DEVICE.test(sessionId)) return sessionId;
  const cleaned = sessionId.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^[._-]+/, '').slice(0, 80);
  // `aux.txt-<hash>` is still AUX with an extension; `aux_txt-<hash>` is a name.
  const named = WINDOWS_DEVICE.test(cleaned) ? cleaned.replaceAll('.', '_') : cleaned;
  return `${named || 'session'}-${hash(sessionId).slice(0, 16)}`;
}
