// exportLines and exportCsvLines against a real SQLite store: one JSON line or CSV row per record (and
// collector alert), filters passed through, and hostile strings that stay data: never a line break or a
// forged line, never a formula, markup or escape sequence a spreadsheet or terminal would act on.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { csvCell, csvHeader, CSV_COLUMNS, CSV_LINE_BREAK, exportCsvLines, exportLines, jsonLine } from './export.ts';
import { fillEvidenceStore, HOSTILE_COMMAND_LINES, parseCsv } from './export/testing.ts';
import { chainHash } from './protocol/chain.ts';
import { sha256Hex, TestChain, testCollectorAlert } from './store/contract.ts';
import { openSqliteStore } from './store/sqlite/index.ts';
import type { Store } from './store/types.ts';

let dir: string;
let path: string;
let store: Store;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'omwatch-export-'));
  path = join(dir, 'collector.db');
  store = openSqliteStore(path);
});
afterEach(async () => {
  store.close();
  await rm(dir, { recursive: true, force: true });
});

function deliver(chain: TestChain, agentId: string): void {
  if (!store.agent(agentId)) store.createAgent({ id: agentId, name: agentId, hostId: null, keyHash: sha256Hex(agentId), enrolledWith: 'tok' });
  store.claimStream(chain.stream, agentId);
  store.commit(chain.commit());
}

function two(): { a: TestChain; b: TestChain } {
  const a = new TestChain('stream-a-0001', { host: { id: 'h1', name: 'hmi-1' } });
  a.event({ time: '2026-03-01T10:00:01.000Z' });
  a.alert({ time: '2026-03-01T10:00:02.000Z' });
  const b = new TestChain('stream-b-0001', { host: { id: 'h2', name: 'hmi-2' } });
  b.event({ time: '2026-03-01T10:00:03.000Z' });
  // Stored before a: the export is still in (stream, seq) order.
  deliver(b, 'ag-b');
  deliver(a, 'ag-a');
  return { a, b };
}

const parsed = (lines: string[]) => lines.map((line) => JSON.parse(line) as Record<string, unknown>);

describe('exportLines', () => {
  it('writes one line per record, in (stream, seq) order, with the record as it was sent', () => {
    const { a, b } = two();
    const lines = [...exportLines(store, {})];
    const stored = [...store.records()];
    expect(parsed(lines)).toEqual([
      { agentId: 'ag-a', stream: 'stream-a-0001', seq: 1, receivedAt: stored[0]!.receivedAt, record: a.records[0] },
      { agentId: 'ag-a', stream: 'stream-a-0001', seq: 2, receivedAt: stored[1]!.receivedAt, record: a.records[1] },
      { agentId: 'ag-b', stream: 'stream-b-0001', seq: 1, receivedAt: stored[2]!.receivedAt, record: b.records[0] },
    ]);
    expect(Object.keys(parsed(lines)[0]!)).toEqual(['agentId', 'stream', 'seq', 'receivedAt', 'record']);
  });

  it('keeps each exported record verifiable on its own: it still hashes to its hash', () => {
    two();
    for (const line of parsed([...exportLines(store, {})])) {
      const record = line['record'] as Record<string, unknown>;
      expect(chainHash(record)).toBe(record['hash']);
    }
  });

  it('passes the record filter through', () => {
    two();
    const keys = (filter: Parameters<typeof exportLines>[1]) => parsed([...exportLines(store, filter)]).map((l) => `${String(l['stream'])}#${String(l['seq'])}`);
    expect(keys({ hostId: 'h2' })).toEqual(['stream-b-0001#1']);
    expect(keys({ kind: 'alert' })).toEqual(['stream-a-0001#2']);
    expect(keys({ agentId: 'ag-a', since: '2026-03-01T10:00:02.000Z' })).toEqual(['stream-a-0001#2']);
    expect(keys({ until: '2026-03-01T10:00:02.000Z' })).toEqual(['stream-a-0001#1']);
  });

  describe('collector alerts', () => {
    function alerts() {
      const early = testCollectorAlert({ time: '2026-03-01T09:00:00.000Z', agentId: 'ag-a', stream: 'stream-a-0001', details: '{"fromSeq":3,"toSeq":4}' });
      const late = testCollectorAlert({ time: '2026-03-01T12:00:00.000Z', type: 'agent_offline', agentId: 'ag-b' });
      store.addAlert(late);
      store.addAlert(early);
      return { early, late };
    }

    it('leaves them out unless asked', () => {
      two();
      alerts();
      expect([...exportLines(store, {})]).toHaveLength(3);
      expect([...exportLines(store, { includeCollectorAlerts: false })]).toHaveLength(3);
    });

    it('adds them after the records, by time, with their details as JSON', () => {
      two();
      const { early, late } = alerts();
      const lines = parsed([...exportLines(store, { includeCollectorAlerts: true })]);
      expect(lines).toHaveLength(5);
      expect(lines.slice(3)).toEqual([
        { collectorAlert: { ...early, details: { fromSeq: 3, toSeq: 4 } } },
        { collectorAlert: { ...late, details: { fromSeq: 3, toSeq: 4 } } },
      ]);
    });

    it('keeps those in the time window and naming the agent or stream asked for', () => {
      two();
      const { early, late } = alerts();
      const ids = (filter: Parameters<typeof exportLines>[1]) =>
        parsed([...exportLines(store, { ...filter, includeCollectorAlerts: true })])
          .filter((l) => 'collectorAlert' in l)
          .map((l) => (l['collectorAlert'] as { id: string }).id);
      expect(ids({ since: '2026-03-01T10:00:00.000Z' })).toEqual([late.id]);
      expect(ids({ until: '2026-03-01T10:00:00.000Z' })).toEqual([early.id]);
      expect(ids({ agentId: 'ag-b' })).toEqual([late.id]);
      expect(ids({ stream: 'stream-a-0001' })).toEqual([early.id]);
      expect(ids({ hostId: 'h1' })).toEqual([early.id, late.id]);
    });
  });

  it('keeps hostile strings as data: no line breaks, no forged lines, every value back intact', () => {
    const hostile = [
      'bash -c "x"\n{"agentId":"forged","stream":"stream-0001","seq":99}',
      '\r\n"}],"record":null}',
      'a\u2028b\u2029c\u0085d\u000be\u000cf\u001cg',
      '</script><script>alert(1)</script>',
      '\\u000a \\" \u0000',
    ];
    const chain = new TestChain('stream-0001', { host: { id: 'h\n1', name: 'hmi\u2028evil' } });
    for (const commandLine of hostile) chain.event({ commandLine });
    deliver(chain, 'ag-1');
    store.addAlert(testCollectorAlert({ summary: 'seq 3\n{"collectorAlert":{"forged":true}}\u2028', details: JSON.stringify({ note: 'line\nbreak\u2028' }) }));

    const lines = [...exportLines(store, { includeCollectorAlerts: true })];
    // Python's str.splitlines() breaks on all of these; a reader of any kind must see one value per line.
    const breaks = new Set(['\n', '\r', '\u000b', '\u000c', '\u001c', '\u001d', '\u001e', '\u0085', '\u2028', '\u2029']);
    expect(lines).toHaveLength(hostile.length + 1);
    for (const line of lines) expect([...line].filter((c) => breaks.has(c))).toEqual([]);
    const values = parsed(lines);
    expect(values.slice(0, hostile.length).map((l) => (l['record'] as { fields: { CommandLine: string } }).fields.CommandLine)).toEqual(hostile);
    expect(values.slice(0, hostile.length).map((l) => (l['record'] as { host: { name: string } }).host.name)).toEqual(hostile.map(() => 'hmi\u2028evil'));
    expect(values.map((l) => l['agentId'])).toEqual([...hostile.map(() => 'ag-1'), undefined]);
    expect(values.at(-1)).toMatchObject({ collectorAlert: { summary: 'seq 3\n{"collectorAlert":{"forged":true}}\u2028', details: { note: 'line\nbreak\u2028' } } });
  });

  it('stops at a stored body that is not JSON, naming the record', () => {
    two();
    const raw = new Database(path);
    try {
      raw.prepare("UPDATE records SET body = 'not json' WHERE stream = 'stream-a-0001' AND seq = 2").run();
    } finally {
      raw.close();
    }
    const lines = exportLines(store, {});
    expect(lines.next().done).toBe(false);
    expect(() => lines.next()).toThrow(/export: stream stream-a-0001 seq 2: stored body is not JSON/);
  });
});

describe('csvCell', () => {
  it('puts a single quote before a value a spreadsheet would take as a formula', () => {
    // OWASP's list (= + - @ TAB CR), NUL (ASVS 5 1.2.10) and LF.
    for (const start of ['=', '+', '-', '@', '\t', '\r', '\n', '\0']) {
      const value = `${start}1+1`;
      expect(parseCsv(`${csvCell(value)}\r\n`), JSON.stringify(value)).toEqual([[`'${value}`]]);
    }
    expect(csvCell('=SUM(A1:A9)')).toBe("'=SUM(A1:A9)");
    expect(csvCell('-bash')).toBe("'-bash");
    expect(csvCell("'=already quoted")).toBe("'=already quoted");
    for (const plain of ['bash -i', 'a=b', '1-2', 'user@host', ' =1', '', '０=１']) expect(csvCell(plain)).toBe(plain);
  });

  it('quotes per RFC 4180 where a value holds a quote, separator or line break, and doubles its quotes', () => {
    expect(csvCell('say "hi"')).toBe('"say ""hi"""');
    expect(csvCell('a,b')).toBe('"a,b"');
    expect(csvCell('a;=1+1')).toBe('"a;=1+1"');
    expect(csvCell('a\tb')).toBe('"a\tb"');
    expect(csvCell('one\r\ntwo')).toBe('"one\r\ntwo"');
    expect(csvCell('=a,"b"')).toBe('"\'=a,""b"""');
  });

  it('keeps every hostile value as inert text that reads back as itself (after the formula quote)', () => {
    for (const value of HOSTILE_COMMAND_LINES) {
      const [[cell]] = parseCsv(`${csvCell(value)}\r\n`) as [[string]];
      expect(cell).toBe(/^[=+\-@\t\r\n\0]/.test(value) ? `'${value}` : value);
    }
  });
});

describe('exportCsvLines', () => {
  it('writes the header, then one row per record with its useful columns and the whole record last', () => {
    const { a, b } = fillEvidenceStore(store);
    const rows = parseCsv(`${[...exportCsvLines(store, {})].join(CSV_LINE_BREAK)}${CSV_LINE_BREAK}`);
    expect(rows[0]).toEqual([...CSV_COLUMNS]);
    expect(csvHeader()).toBe('time,host,host_id,kind,category,action,rule_id,rule_title,level,user,command_line,session_id,summary,agent_id,stream,seq,hash,record');
    const records = [...a.records, ...b.records];
    expect(rows).toHaveLength(1 + records.length);
    const column = (row: string[], name: (typeof CSV_COLUMNS)[number]) => row[CSV_COLUMNS.indexOf(name)];
    for (const [i, record] of records.entries()) {
      const row = rows[i + 1]!;
      expect(row).toHaveLength(CSV_COLUMNS.length);
      expect(JSON.parse(column(row, 'record')!)).toEqual(record);
      expect(column(row, 'hash')).toBe(record.hash);
      expect(column(row, 'seq')).toBe(String(record.seq));
      expect(column(row, 'stream')).toBe(record.stream);
    }
    expect(rows[1]).toEqual([
      a.records[0]!.time, 'hmi-1', 'h1', 'event', 'process_creation', '', '', '', '', 'vendor1', `'${HOSTILE_COMMAND_LINES[0]}`, '', '',
      'ag-a', 'stream-a-0001', '1', a.records[0]!.hash, jsonLine(a.records[0]),
    ]);
    const alert = rows.find((row) => column(row, 'kind') === 'alert')!;
    expect(alert.slice(0, 14)).toEqual([
      a.records[3]!.time, 'hmi-1', 'h1', 'alert', '', '', 'om-001', 'Remote shell outside the maintenance window', 'high', '', '', 'ssh-9',
      'vendor1 opened a shell on hmi-07', 'ag-a',
    ]);
    const start = rows.find((row) => column(row, 'action') === 'start')!;
    expect([column(start, 'category'), column(start, 'session_id'), column(start, 'user')]).toEqual(['remote_session', 'shell-0193aa00-0000-7000-8000-000000000001', 'vendor1']);
  });

  it('adds the collector alerts when asked, with the alert as the record column', () => {
    const { collectorAlert } = fillEvidenceStore(store);
    const rows = parseCsv(`${[...exportCsvLines(store, { includeCollectorAlerts: true })].join(CSV_LINE_BREAK)}${CSV_LINE_BREAK}`);
    const last = rows.at(-1)!;
    expect(last).toEqual([
      collectorAlert.time, '', '', 'collector_alert', 'chain_broken', '', '', '', '', '', '', '', `'${collectorAlert.summary}`, 'ag-a', 'stream-a-0001', '', '',
      jsonLine({ ...collectorAlert, details: JSON.parse(collectorAlert.details) as unknown }),
    ]);
  });

  it('keeps hostile command lines inert: no formula, markup or escape sequence acts, and each reads back exactly', () => {
    fillEvidenceStore(store, { hostile: HOSTILE_COMMAND_LINES });
    const text = `${[...exportCsvLines(store, { stream: 'stream-a-0001', category: 'process_creation' })].join(CSV_LINE_BREAK)}${CSV_LINE_BREAK}`;
    const rows = parseCsv(text).slice(1);
    const commandLines = rows.map((row) => row[CSV_COLUMNS.indexOf('command_line')]!).slice(0, HOSTILE_COMMAND_LINES.length);
    expect(commandLines).toEqual(HOSTILE_COMMAND_LINES.map((value) => (/^[=+\-@\t\r\n\0]/.test(value) ? `'${value}` : value)));
    for (const row of rows) {
      // Not one cell a spreadsheet would evaluate.
      for (const cell of row) expect(cell, JSON.stringify(cell.slice(0, 40))).not.toMatch(/^[=+\-@\t\r\n\0]/);
      // The record column is the record, unchanged: the JSON has the escape characters as \u escapes.
      const record = JSON.parse(row.at(-1)!) as { fields: { CommandLine: string } };
      // oxlint-disable-next-line no-control-regex
      expect(row.at(-1)).not.toMatch(/[\u0000-\u001f]/);
      expect(HOSTILE_COMMAND_LINES.concat('bash -i')).toContain(record.fields.CommandLine);
    }
    // The ANSI escapes are in the file as the characters they are, inside a cell, not turned into anything.
    expect(text).toContain('\u001b[2J\u001b[1;1H');
    expect(text).toContain('<script>alert(document.cookie)</script>');
    expect(commandLines[10]).toHaveLength(HOSTILE_COMMAND_LINES[10]!.length);
  });
});
