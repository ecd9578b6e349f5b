// `omwatch-collector export` and `verify --export` as an auditor runs them, against real SQLite stores:
// bundles in each format verified offline, one changed byte found and named, records deleted and declared
// left out found (offline, or against the store for a filtered bundle), CSV that a spreadsheet reads as
// inert text, the single-session .cast kept, every export in the access log, wrong command lines
// refused, progress on a terminal only.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CSV_COLUMNS } from '../collector/export.ts';
import { editRecords, fillEvidenceStore, HOSTILE_COMMAND_LINES, parseCsv, resignBundle, type EvidenceStore } from '../collector/export/testing.ts';
import type { ExportVerdict } from '../collector/export/verify.ts';
import { sessionCast } from '../collector/sessions.ts';
import { openSqliteStore } from '../collector/store/sqlite/index.ts';
import { COLLECTOR_BIN } from './helpers/delivery.ts';
import { Terminal } from './helpers/terminal.ts';

let dir: string;
let data: string;
let evidence: EvidenceStore;
let cast: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'omwatch-export-cli-'));
  data = join(dir, 'data');
  mkdirSync(data);
  const store = openSqliteStore(join(data, 'collector.db'));
  try {
    evidence = fillEvidenceStore(store, { hostile: HOSTILE_COMMAND_LINES });
    cast = sessionCast(store, evidence.sessionId).cast;
  } finally {
    store.close();
  }
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The CLI as a child process; several run at once (each start costs a second or two). */
function run(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [COLLECTOR_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject);
    child.once('close', (status) => resolve({ status, stdout, stderr }));
  });
}

describe('omwatch-collector export --out DIR, verify --export DIR', () => {
  it('writes a bundle in each format that verify passes offline; nothing on stderr when it is a pipe', async () => {
    const formats = ['jsonl', 'csv', 'asciicast'] as const;
    const exported = await Promise.all(formats.map((format) => run(['export', '--data', data, '--format', format, '--out', join(dir, `ok-${format}`)])));
    for (const [i, result] of exported.entries()) {
      expect(result.status, result.stderr).toBe(0);
      expect(result.stderr).toBe('');
      const out = join(dir, `ok-${formats[i]}`);
      expect(result.stdout).toMatch(new RegExp(`^exported .*records? of \\d streams? and \\d collector alerts? to ${out} \\(\\d files and manifest\\.json\\); check it with: omwatch-collector verify --export ${out}\\n$`));
    }
    expect(exported[0]!.stdout).toMatch(new RegExp(`^exported ${evidence.a.records.length + 3} records of 2 streams and 1 collector alert to `));
    expect(exported[2]!.stdout).toMatch(/^exported 1 session, 5 records of 1 stream and 0 collector alerts to /);
    expect(readdirSync(join(dir, 'ok-csv')).sort()).toEqual(['collector-alerts.jsonl', 'manifest.json', 'records.csv', 'records.jsonl']);
    expect(readFileSync(join(dir, 'ok-asciicast', 'sessions', `${evidence.sessionId}.cast`), 'utf8')).toBe(cast);

    const verified = await Promise.all([
      ...formats.map((format) => run(['verify', '--export', join(dir, `ok-${format}`)])),
      run(['verify', '--export', join(dir, 'ok-csv'), '--json']),
      run(['verify', '--export', join(dir, 'ok-asciicast'), '--data', data]),
    ]);
    for (const result of verified) expect(result.status, result.stdout).toBe(0);
    const { a, b } = evidence;
    expect(verified[0]!.stdout.split('\n')).toEqual([
      `ok     stream stream-a-0001 (agent ag-a) in records.jsonl: ${a.records.length} records, seq 1–${a.records.length}, contiguous; prev of the first ${'0'.repeat(64)}, hash of the last ${a.records.at(-1)!.hash}`,
      `ok     stream stream-b-0001 (agent ag-b) in records.jsonl: 3 records, seq 1–3, contiguous; prev of the first ${'0'.repeat(64)}, hash of the last ${b.records[2]!.hash}`,
      expect.stringMatching(new RegExp(`^verified export ${join(dir, 'ok-jsonl')} \\(jsonl, exported .+Z by collector 0\\.1\\.0\\): 2 files, ${a.records.length + 3} records in 2 chain segments; every file, record, link and chain head is as the manifest says$`)),
      '',
    ]);
    expect(verified[2]!.stdout).toContain(', 1 session recording;');
    expect(JSON.parse(verified[3]!.stdout)).toMatchObject({ ok: true, format: 'csv', records: a.records.length + 3, leftOut: { ranges: 0, declared: 0, byFilter: 0 }, againstStore: false, problems: [], problemCount: 0 });
    expect(verified[4]!.stdout.trimEnd().split('\n').slice(-2)).toEqual([
      `ok     checked against the store in ${data}: every record exported is the store's, and every seq left out is outside the filter there or a gap its agent declared`,
      expect.stringMatching(/^verified export .*ok-asciicast \(asciicast, /),
    ]);
  });

  it('names seqs deleted from an export of everything and declared left out in a re-signed manifest; for a filtered bundle says it cannot check them, and --data catches them (review finding)', async () => {
    const everything = join(dir, 'left-out-everything');
    const filtered = join(dir, 'left-out-filtered');
    const exported = await Promise.all([
      run(['export', '--data', data, '--format', 'jsonl', '--out', everything]),
      run(['export', '--data', data, '--format', 'jsonl', '--host', 'h1', '--out', filtered]),
    ]);
    for (const result of exported) expect(result.status, result.stderr).toBe(0);
    for (const bundle of [everything, filtered]) {
      editRecords(bundle, 'records.jsonl', (entries) => entries.filter((e) => e.stream !== 'stream-a-0001' || (e.seq !== 2 && e.seq !== 3)));
      expect(resignBundle(bundle).streams[0]).toMatchObject({ stream: 'stream-a-0001', missing: [[2, 3]] });
    }
    // Seq 4 is now on line 2 of each.
    const [offline, filteredOffline, filteredJson, filteredWithStore] = await Promise.all([
      run(['verify', '--export', everything]),
      run(['verify', '--export', filtered]),
      run(['verify', '--export', filtered, '--json']),
      run(['verify', '--export', filtered, '--data', data]),
    ]);
    expect(offline.status).toBe(1);
    expect(offline.stdout.trimEnd().split('\n').at(-1)).toBe(`export ${everything} ALTERED: 1 problem; first: records.jsonl line 2 (stream stream-a-0001 seq 2): seqs 2–3 of stream stream-a-0001 are left out of an export of everything (no filter), where only seqs their agent declared dropped can be missing, and no buffer_dropped declaration in the bundle covers seqs 2–3: lines were removed after export, or the store lacked them undeclared (verify --data says which)`);

    expect(filteredOffline.status, filteredOffline.stdout).toBe(0);
    expect(filteredOffline.stdout).toContain(`\nNOTE   1 range of seqs was left out by the filter (host=h1) and cannot be checked offline: verify cannot see records the export did not take, so that the filter and not an edit left them out rests on the manifest's word; check them against the collector's store with: omwatch-collector verify --export ${filtered} --data STORE\n`);
    expect(JSON.parse(filteredJson.stdout)).toMatchObject({ ok: true, filter: { hostId: 'h1' }, leftOut: { ranges: 1, declared: 0, byFilter: 1 }, againstStore: false });
    expect(filteredWithStore.status).toBe(1);
    expect(filteredWithStore.stdout).toContain('ALTERED records.jsonl line 2 (stream stream-a-0001 seq 2): seq 2 of stream stream-a-0001 is in the store and within the export\'s filter, yet the bundle leaves it out (seqs 2–3)\n');
    expect(filteredWithStore.stdout).toMatch(/ALTERED: 2 problems; first: records\.jsonl line 2 \(stream stream-a-0001 seq 2\): seq 2 of stream stream-a-0001 is in the store/);
  });

  it('writes each export to the collector\'s access log: cli:<OS user>, what it read and where it went, and whether it succeeded (review finding)', async () => {
    const bundleOut = join(dir, 'logged-bundle');
    const castOut = join(dir, 'logged.cast');
    const results = await Promise.all([
      run(['export', '--data', data, '--format', 'csv', '--host', 'h2']),
      run(['export', '--data', data, '--format', 'jsonl', '--since', '2026-03-01T10:00:00Z', '--out', bundleOut]),
      run(['export', '--data', data, '--session', evidence.sessionId, '--format', 'asciicast', '--out', castOut]),
      run(['export', '--data', data, '--session', 'shell-nope', '--format', 'asciicast']),
      run(['export', '--data', data, '--session', 'shell-nope', '--format', 'asciicast', '--out', `${join(dir, 'logged-none')}/`]),
    ]);
    expect(results.map((r) => r.status)).toEqual([0, 0, 0, 1, 1]);

    let user: string;
    try {
      user = userInfo().username;
    } catch {
      user = String(process.getuid?.());
    }
    const store = openSqliteStore(join(data, 'collector.db'));
    let log: ReturnType<typeof store.accessLog>;
    try {
      log = store.accessLog({ limit: 1_000 });
    } finally {
      store.close();
    }
    const entry = (action: string, target: string, status: number) => ({ id: expect.any(Number), at: expect.stringMatching(/^\d{4}-\d\d-\d\dT.*Z$/), tokenId: 'cli', by: `cli:${user}`, action, target, status });
    const logged = log.filter((e) => e.tokenId === 'cli');
    expect(logged).toContainEqual(entry('export', 'format=csv host=h2', 0));
    expect(logged).toContainEqual(entry('export bundle', `format=jsonl since=2026-03-01T10:00:00.000Z out=${bundleOut}`, 0));
    expect(logged).toContainEqual(entry('export asciicast', `session=${evidence.sessionId} out=${castOut}`, 0));
    expect(logged).toContainEqual(entry('export asciicast', 'session=shell-nope', 1));
    expect(logged).toContainEqual(entry('export bundle', `format=asciicast session=shell-nope out=${join(dir, 'logged-none')}`, 1));
  });

  it('names the record one changed byte is in, exits 1, and says so in --json too', async () => {
    const out = join(dir, 'altered');
    expect((await run(['export', '--data', data, '--format', 'csv', '--out', out])).status).toBe(0);
    const file = join(out, 'records.jsonl');
    const text = readFileSync(file, 'utf8');
    // The middle byte of a command line's value: "systemctl restart plc-gateway" → "…reStart…".
    const at = text.indexOf('systemctl restart plc-gateway') + 'systemctl re'.length;
    writeFileSync(file, `${text.slice(0, at)}S${text.slice(at + 1)}`);
    const line = text.slice(0, at).split('\n').length;
    const target = evidence.a.records.find((r) => (r as { fields?: { CommandLine?: string } }).fields?.CommandLine === 'systemctl restart plc-gateway')!;

    const [human, json] = await Promise.all([run(['verify', '--export', out]), run(['verify', '--export', out, '--json'])]);
    expect(human.status).toBe(1);
    expect(json.status).toBe(1);
    const where = `records.jsonl line ${line} (stream stream-a-0001 seq ${target.seq})`;
    expect(human.stdout).toContain(`ALTERED ${where}: hash mismatch: the record hashes to `);
    expect(human.stdout.trimEnd().split('\n').at(-1)).toMatch(new RegExp(`^export ${out} ALTERED: 3 problems; first: ${where.replace(/[()]/g, '\\$&')}: hash mismatch: the record hashes to [0-9a-f]{64}, it carries ${target.hash}: its content or its hash was changed after it was chained$`));
    const verdict = JSON.parse(json.stdout) as ExportVerdict;
    expect(verdict.firstAltered).toEqual({ file: 'records.jsonl', line, stream: 'stream-a-0001', seq: target.seq, reason: expect.stringMatching(/^hash mismatch: /) });
    // The CSV made from it no longer matches it either, at that record's row.
    expect(verdict.problems.map((p) => p.file)).toEqual(['records.jsonl', 'records.jsonl', 'records.csv']);
  });

  it('writes CSV to stdout that a strict RFC 4180 reader reads back, with no cell a spreadsheet would evaluate', async () => {
    const result = await run(['export', '--data', data, '--format', 'csv', '--host', 'h1']);
    expect(result.status, result.stderr).toBe(0);
    const rows = parseCsv(result.stdout);
    expect(rows[0]).toEqual([...CSV_COLUMNS]);
    // The stream of host h1, then the collector alert (the host filter is the records').
    expect(rows).toHaveLength(1 + evidence.a.records.length + 1);
    const commandLines = rows.slice(1, 1 + HOSTILE_COMMAND_LINES.length).map((row) => row[CSV_COLUMNS.indexOf('command_line')]);
    expect(commandLines).toEqual(HOSTILE_COMMAND_LINES.map((value) => (/^[=+\-@\t\r\n\0]/.test(value) ? `'${value}` : value)));
    for (const row of rows) for (const cell of row) expect(cell.slice(0, 20)).not.toMatch(/^[=+\-@\t\r\n\0]/);
    for (const row of rows.slice(1, -1)) expect(JSON.parse(row.at(-1)!)).toEqual(evidence.a.records[Number(row[CSV_COLUMNS.indexOf('seq')]) - 1]);
  });

  it('keeps the single-session form: --session ID --format asciicast --out FILE writes that file, --out DIR/ a bundle', async () => {
    const file = join(dir, 'single', 'session.cast');
    mkdirSync(join(dir, 'single'));
    const [single, toStdout, bundled] = await Promise.all([
      run(['export', '--data', data, '--session', evidence.sessionId, '--format', 'asciicast', '--out', file]),
      run(['export', '--data', data, '--session', evidence.sessionId, '--format', 'asciicast']),
      run(['export', '--data', data, '--session', evidence.sessionId, '--format', 'asciicast', '--out', `${join(dir, 'one-session')}/`]),
    ]);
    expect(single.status, single.stderr).toBe(0);
    expect(readFileSync(file, 'utf8')).toBe(cast);
    expect(toStdout.stdout).toBe(cast);
    expect(bundled.status, bundled.stderr).toBe(0);
    expect(readFileSync(join(dir, 'one-session', 'sessions', `${evidence.sessionId}.cast`), 'utf8')).toBe(cast);
  });

  it('refuses a wrong command line with exit 2, naming the flag or value', async () => {
    const full = join(dir, 'full');
    mkdirSync(full);
    writeFileSync(join(full, 'x'), '');
    // Each start of the CLI costs a second or two of CPU: the cases that matter most, at once.
    const cases: Array<[string[], RegExp]> = [
      [['export', '--data', data, '--bogus'], /^omwatch-collector export: Unknown option '--bogus'/],
      [['export', '--data', data, '--format', 'xml'], /^omwatch-collector export: --format must be jsonl, csv or asciicast, got "xml"/],
      [['export', '--data', data, '--since', 'yesterday'], /^omwatch-collector export: --since must be an ISO time, got "yesterday"/],
      [['export', '--data', data, '--since', '2026-03-02T00:00:00Z', '--until', '2026-03-01T00:00:00Z'], /^omwatch-collector export: --since 2026-03-02T00:00:00\.000Z must be before --until 2026-03-01T00:00:00\.000Z/],
      [['export', '--data', data, '--format', 'csv', '--out', full], new RegExp(`^omwatch-collector export: --out ${full} is not empty`)],
      [['export', '--data', data, '--out', join(dir, 'evidence.jsonl')], /--out .*evidence\.jsonl looks like a file name, but --out names a bundle directory/],
      [['export', '--data', data, '--format', 'asciicast', '--session', 's', '--since', '2026-03-01T00:00:00Z'], /^omwatch-collector export: --since selects the sessions of a bundle/],
      [['verify', '--export', join(dir, 'nowhere')], /^omwatch-collector verify: --export must name an export directory, got ".*nowhere" \(no such directory\)/],
      [['verify', '--export', full, '--data', join(dir, 'no-store')], /^omwatch-collector verify: --data must name a collector's data directory \(one holding collector\.db\), got ".*no-store"/],
    ];
    const results = await Promise.all(cases.map(([args]) => run(args)));
    for (const [i, result] of results.entries()) {
      expect(result.status, cases[i]![0].join(' ')).toBe(2);
      expect(result.stderr, cases[i]![0].join(' ')).toMatch(cases[i]![1]);
      expect(result.stderr).toContain('\n\nusage: omwatch-collector');
    }
    expect(readdirSync(full)).toEqual(['x']);
    expect(existsSync(join(dir, 'no-store'))).toBe(false);
  });

  it('verify --export exits 1, not 2, for a directory that is no export: it names the missing manifest', async () => {
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    const result = await run(['verify', '--export', empty]);
    expect(result.status).toBe(1);
    expect(result.stdout).toBe(`ALTERED manifest.json: missing: nothing says what the export holds (an export cut short writes none)\nexport ${empty} ALTERED: 1 problem; first: manifest.json: missing: nothing says what the export holds (an export cut short writes none)\n`);
  });

  it('counts records on stderr when it is a terminal, updated in place, and clears the line when done', async () => {
    const out = join(dir, 'on-a-terminal');
    // stdout to a file: the terminal shows stderr alone.
    const t = new Terminal(['/bin/sh', '-c', `exec "${process.execPath}" "${COLLECTOR_BIN}" export --data "${data}" --format jsonl --out "${out}" > "${join(dir, 'summary.txt')}"`], {
      env: { HOME: dir },
    });
    expect((await t.exited).exitCode).toBe(0);
    expect(t.text()).toMatch(new RegExp(`^\\rexporting ${evidence.a.records.length + 3} records…\\r\\u001b\\[K$`));
    expect(readFileSync(join(dir, 'summary.txt'), 'utf8')).toMatch(/^exported /);
    expect((await run(['verify', '--export', out])).status).toBe(0);
  });
});
