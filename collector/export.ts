// `omwatch-collector export` (design.md §8, auditors): the stored records, and optionally the
// collector's own alerts, as JSON lines for archives and SIEMs or CSV rows for spreadsheets.
import type { CollectorAlert, RecordFilter, Store, StoredRecord } from './store/types.ts';

export interface ExportFilter extends RecordFilter {
  /**
   * Adds the collector's own alerts after the records, as `{"collectorAlert":{…}}` lines: those in the
   * since/until window and, when `agentId` or `stream` is given, those naming it. `hostId` and `kind`
   * apply to records only.
   */
  includeCollectorAlerts?: boolean;
}

/** One exported record: the value of its JSON line, with the record exactly as stored (and chained). */
export interface RecordEntry {
  agentId: string;
  stream: string;
  seq: number;
  receivedAt: string;
  record: unknown;
}

/** One of the collector's own alerts (not chained: the collector raised it, no agent sent it). */
export interface CollectorAlertEntry {
  collectorAlert: Omit<CollectorAlert, 'details'> & { details: unknown };
}

export type ExportEntry = RecordEntry | CollectorAlertEntry;

/** A stored record as an export entry; its body must be JSON (ingest stores nothing else). */
export function recordEntry(stored: StoredRecord): RecordEntry {
  let record: unknown;
  try {
    record = JSON.parse(stored.body);
  } catch (error) {
    // Ingest stores only JSON; anything else was written around it. Exporting it altered would hide that.
    throw new Error(`export: stream ${stored.stream} seq ${stored.seq}: stored body is not JSON (${(error as Error).message}); run verify`, {
      cause: error,
    });
  }
  return { agentId: stored.agentId, stream: stored.stream, seq: stored.seq, receivedAt: stored.receivedAt, record };
}

/** The collector alerts an export with this filter carries, by time (see `includeCollectorAlerts`). */
export function* collectorAlertEntries(store: Store, filter: ExportFilter = {}): Generator<CollectorAlertEntry, void, undefined> {
  const window = {
    ...(filter.since === undefined ? {} : { since: filter.since }),
    ...(filter.until === undefined ? {} : { until: filter.until }),
  };
  for (const alert of store.collectorAlerts(window)) {
    if (filter.agentId !== undefined && alert.agentId !== filter.agentId) continue;
    if (filter.stream !== undefined && alert.stream !== filter.stream) continue;
    yield { collectorAlert: { ...alert, details: detailsOf(alert) } };
  }
}

/** The records matching the filter in (stream, seq) order, then the collector alerts if asked. */
export function* exportEntries(store: Store, filter: ExportFilter = {}): Generator<ExportEntry, void, undefined> {
  const { includeCollectorAlerts = false, ...recordFilter } = filter;
  for (const stored of store.records(recordFilter)) yield recordEntry(stored);
  if (includeCollectorAlerts) yield* collectorAlertEntries(store, filter);
}

/**
 * One line per record, in (stream, seq) order: `{"agentId","stream","seq","receivedAt","record"}` with
 * the record as stored. Lines hold no line breaks of any kind, so a split on them yields one JSON value each.
 */
export function* exportLines(store: Store, filter: ExportFilter = {}): Generator<string, void, undefined> {
  for (const entry of exportEntries(store, filter)) yield jsonLine(entry);
}

/** Details are JSON the collector wrote; kept as a string if they are not, rather than lost. */
export function detailsOf(alert: CollectorAlert): unknown {
  try {
    return JSON.parse(alert.details);
  } catch {
    return alert.details;
  }
}

/**
 * A value as one export line. JSON.stringify escapes control characters but leaves U+0085, U+2028 and
 * U+2029, which some line readers (Python's splitlines, JavaScript source) take as line breaks; escaped,
 * they stay data. Parsing a line and writing it again gives the same line, which verify relies on.
 */
export function jsonLine(value: unknown): string {
  return JSON.stringify(value).replace(/[\u0085\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The CSV columns, in order; the last holds the whole record (or collector alert) as its JSON line. */
export const CSV_COLUMNS = [
  'time', 'host', 'host_id', 'kind', 'category', 'action', 'rule_id', 'rule_title', 'level', 'user', 'command_line',
  'session_id', 'summary', 'agent_id', 'stream', 'seq', 'hash', 'record',
] as const;

/** RFC 4180 ends every row with CRLF; line breaks inside quoted cells are kept as they are. */
export const CSV_LINE_BREAK = '\r\n';

// Spreadsheets (Excel, LibreOffice, Google Sheets) take a cell that starts with one of these as a
// formula: = + - @ (OWASP "CSV injection"), TAB and CR (OWASP), NUL (ASVS 5 1.2.10) and LF, which a
// reader trimming the cell would drop in front of one of the others.
const FORMULA_START = /^[=+\-@\t\r\n\0]/;
// RFC 4180 quotes a cell holding a quote, comma or line break. `;` and TAB too: a spreadsheet set to
// split on them would cut an unquoted cell there, and the part after could start a formula.
const NEEDS_QUOTES = /[",;\t\r\n]/;

/**
 * One CSV cell holding `value` as inert text: a leading single quote where a spreadsheet would see a
 * formula (the cell then shows the text, the quote marks it as text), and RFC 4180 quoting (the cell in
 * double quotes, a double quote doubled) where the value holds a separator, quote or line break.
 * Everything else, escape sequences and markup included, is kept as the characters it is.
 */
export function csvCell(value: string): string {
  const inert = FORMULA_START.test(value) ? `'${value}` : value;
  return NEEDS_QUOTES.test(inert) ? `"${inert.replaceAll('"', '""')}"` : inert;
}

/** The values of an entry's row, one per CSV column, before quoting. */
export function csvValues(entry: ExportEntry): string[] {
  const values: Record<(typeof CSV_COLUMNS)[number], string> = {
    time: '', host: '', host_id: '', kind: '', category: '', action: '', rule_id: '', rule_title: '', level: '', user: '',
    command_line: '', session_id: '', summary: '', agent_id: '', stream: '', seq: '', hash: '', record: '',
  };
  if ('collectorAlert' in entry) {
    const alert = entry.collectorAlert;
    Object.assign(values, {
      time: alert.time, kind: 'collector_alert', category: alert.type, summary: alert.summary,
      agent_id: alert.agentId ?? '', stream: alert.stream ?? '', record: jsonLine(alert),
    });
  } else {
    const record = objectOr(entry.record);
    const host = objectOr(record['host']);
    const fields = objectOr(record['fields']);
    const rule = objectOr(record['rule']);
    const alert = 'rule' in record;
    Object.assign(values, {
      time: text(record['time']), host: text(host['name']), host_id: text(host['id']), kind: alert ? 'alert' : 'event',
      category: text(record['category']), action: text(fields['Action']), rule_id: text(rule['id']), rule_title: text(rule['title']),
      level: text(rule['level']), user: text(fields['User']), command_line: text(fields['CommandLine']),
      session_id: text(alert ? record['sessionId'] : fields['SessionId']), summary: text(record['summary']),
      agent_id: entry.agentId, stream: entry.stream, seq: String(entry.seq), hash: text(record['hash']), record: jsonLine(entry.record),
    });
  }
  return CSV_COLUMNS.map((column) => values[column]);
}

/** An entry's CSV row, without its line break. */
export function csvRow(entry: ExportEntry): string {
  return csvValues(entry).map(csvCell).join(',');
}

/** The CSV header row, without its line break. */
export function csvHeader(): string {
  return CSV_COLUMNS.join(',');
}

/**
 * The header row, then one row per record (and collector alert, if asked) in `exportLines` order. Rows
 * come without their line break: join them with CSV_LINE_BREAK. A row may hold line breaks inside
 * quoted cells, so a reader must parse the CSV, not split it on lines.
 */
export function* exportCsvLines(store: Store, filter: ExportFilter = {}): Generator<string, void, undefined> {
  yield csvHeader();
  for (const entry of exportEntries(store, filter)) yield csvRow(entry);
}

function objectOr(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

/** A field as cell text: strings as they are, other JSON values as JSON, absent ones empty. */
function text(value: unknown): string {
  if (value === undefined || value === null) return '';
  return typeof value === 'string' ? value : (JSON.stringify(value) ?? '');
}
