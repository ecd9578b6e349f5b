// `omwatch-collector export` (design.md §8, auditors): the stored records, and optionally the
// collector's own alerts, as JSON lines for archives and SIEMs; every value goes out JSON-encoded.
import type { CollectorAlert, RecordFilter, Store } from './store/types.ts';

export interface ExportFilter extends RecordFilter {
  /**
   * Adds the collector's own alerts after the records, as `{"collectorAlert":{…}}` lines: those in the
   * since/until window and, when `agentId` or `stream` is given, those naming it. `hostId` and `kind`
   * apply to records only.
   */
  includeCollectorAlerts?: boolean;
}

/**
 * One line per record, in (stream, seq) order: `{"agentId","stream","seq","receivedAt","record"}` with
 * the record as stored. Lines hold no line breaks of any kind, so a split on them yields one JSON value each.
 */
export function* exportLines(store: Store, filter: ExportFilter = {}): Generator<string, void, undefined> {
  const { includeCollectorAlerts = false, ...recordFilter } = filter;
  for (const stored of store.records(recordFilter)) {
    let record: unknown;
    try {
      record = JSON.parse(stored.body);
    } catch (error) {
      // Ingest stores only JSON; anything else was written around it. Exporting it altered would hide that.
      throw new Error(`export: stream ${stored.stream} seq ${stored.seq}: stored body is not JSON (${(error as Error).message}); run verify`, {
        cause: error,
      });
    }
    yield line({ agentId: stored.agentId, stream: stored.stream, seq: stored.seq, receivedAt: stored.receivedAt, record });
  }
  if (!includeCollectorAlerts) return;
  const window = {
    ...(filter.since === undefined ? {} : { since: filter.since }),
    ...(filter.until === undefined ? {} : { until: filter.until }),
  };
  for (const alert of store.collectorAlerts(window)) {
    if (filter.agentId !== undefined && alert.agentId !== filter.agentId) continue;
    if (filter.stream !== undefined && alert.stream !== filter.stream) continue;
    yield line({ collectorAlert: { ...alert, details: detailsOf(alert) } });
  }
}

/** Details are JSON the collector wrote; kept as a string if they are not, rather than lost. */
function detailsOf(alert: CollectorAlert): unknown {
  try {
    return JSON.parse(alert.details);
  } catch {
    return alert.details;
  }
}

// JSON.stringify escapes control characters but leaves U+0085, U+2028 and U+2029, which some line
// readers (Python's splitlines, JavaScript source) take as line breaks; escaped, they stay data.
function line(value: unknown): string {
  return JSON.stringify(value).replace(/[\u0085\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
