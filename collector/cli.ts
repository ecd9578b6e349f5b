// The `omwatch-collector` command line. Exit codes: 0 done, 1 failed (or, for verify, a broken chain),
// 2 the command line is wrong. Secrets are printed once, on the last line, and never logged.
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join, resolve as absolutePath } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { pino } from 'pino';
import { v7 as uuidv7 } from 'uuid';
import { WebSocket } from 'ws';
import { newSecret, secretHash } from './auth.ts';
import { CSV_LINE_BREAK, exportCsvLines, exportLines } from './export.ts';
import { ExportError, writeExportBundle, type BundleResult } from './export/bundle.ts';
import { EXPORT_FORMATS, type BundleFilter, type ExportFormat } from './export/manifest.ts';
import { verifyExport, type ExportProblem } from './export/verify.ts';
import { LIVE_PATH, LiveAlertFrameSchema, SESSIONS_PATH, webSocketUrl } from './protocol/index.ts';
import { CollectorConfigError } from './errors.ts';
import { openSqliteStore } from './store/sqlite/index.ts';
import { SqliteWriter } from './store/sqlite/writer.ts';
import { ROLES, type Role, type Store } from './store/types.ts';
import { verifyStore } from './verify.ts';
import { listSessions, rangesText, SessionNotFoundError, sessionCast } from './sessions.ts';

const VERSION = '0.1.0';

const USAGE = `usage: omwatch-collector <command> [options]

commands:
  serve --listen HOST:PORT --data DIR [--tls-cert FILE --tls-key FILE]
                          serve enrollment, agent ingest and the live alert feed; TLS is required
                          unless HOST is a loopback address
  token create --role enroll|admin|analyst|auditor [--name N] --data DIR
                          make a token; it is printed once, as the last line
  token list --data DIR [--json]
  token revoke ID --data DIR
  agents --data DIR [--json]       list enrolled agents
  agents revoke ID --data DIR      revoke an agent's key
  tail --url URL --token T [--ca FILE] [--json]
                          print alerts as they arrive (analyst token)
  export --data DIR [--since T] [--until T] [--host H] [--session ID] [--format jsonl|csv]
                          write the stored records, then the collector's own alerts, to stdout as
                          JSON lines or CSV rows
  export --data DIR [--since T] [--until T] [--host H] [--session ID] --format jsonl|csv|asciicast
         --out DIR        write an evidence bundle to DIR (new or empty): the records as stored, the
                          CSV or one .cast per recorded shell session open in the window, and
                          manifest.json (each file's SHA-256, the chain heads, the filter); check it
                          offline with verify --export. A count of records goes to stderr on a terminal.
                          Every export is written to the collector's access log, by cli:<OS user>
  export --data DIR --session ID --format asciicast [--out FILE]
                          write one recorded shell session as an asciicast v2 file (asciinema play);
                          exit 1, naming them, if chunks of the recording are missing. With
                          --session, --out is this file unless it ends in / or names a directory
  sessions --data DIR [--json]
                          list recorded shell sessions: id, host, user, ticket, start, end, state
  sessions live --url URL --token T [--ca FILE] [--json]
                          list the recorded shells live now (analyst token)
  sessions kill ID --url URL --token T [--ca FILE]
                          end a live recorded shell; the agent ends it within a second and records
                          who ended it (analyst token)
  verify --data DIR [--json]
                          recompute every stream's hash chain; print the first broken record of
                          each stream; exit 1 if any is broken
  verify --export DIR [--data STORE] [--json]
                          check an export bundle offline: each file against the manifest, every
                          record's hash and link, the chain heads, the seqs left out, the CSV and
                          recordings against their records; name the first altered record; exit 1
                          if any was altered. With --data, also against the collector's store: every
                          record the store's, every seq left out outside the filter there or declared
                          dropped by its agent (what a filtered bundle alone cannot show)
  version | help`;

class UsageError extends Error {}

function parse<O extends ParseArgsConfig['options']>(command: string, args: string[], options: O) {
  try {
    return parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: true });
  } catch (error) {
    throw new UsageError(`omwatch-collector ${command}: ${(error as Error).message}`);
  }
}

function required(command: string, value: string | undefined, flag: string): string {
  if (!value) throw new UsageError(`omwatch-collector ${command}: ${flag} is required`);
  return value;
}

function openStore(dataDir: string): Store {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  return openSqliteStore(join(dataDir, 'collector.db'));
}

/** Terminal output: attacker-controlled text (rule titles, host names, summaries) cannot steer the terminal. */
function printable(text: unknown): string {
  // oxlint-disable-next-line no-control-regex
  return String(text).replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  switch (command) {
    case 'serve': {
      const { values } = parse('serve', args, { listen: { type: 'string' }, data: { type: 'string' }, 'tls-cert': { type: 'string' }, 'tls-key': { type: 'string' }, 'log-level': { type: 'string' } });
      if (values.help) return help();
      const listen = required('serve', values.listen, '--listen HOST:PORT');
      const match = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(listen);
      if (!match) throw new UsageError(`omwatch-collector serve: --listen must be HOST:PORT, got ${JSON.stringify(listen)}`);
      if (Boolean(values['tls-cert']) !== Boolean(values['tls-key'])) throw new UsageError('omwatch-collector serve: --tls-cert and --tls-key go together');
      const logger = pino({ level: values['log-level'] ?? 'info', base: undefined, timestamp: pino.stdTimeFunctions.isoTime, redact: ['key', 'token', '*.key', '*.token'] }, pino.destination({ fd: 2, sync: true }));
      const dataDir = required('serve', values.data, '--data DIR');
      const store = openStore(dataDir);
      // Inserts run on a thread of their own, beside parsing and checking frames on this one.
      let stopping = false;
      const writer = new SqliteWriter(join(dataDir, 'collector.db'), {}, (error) => {
        if (stopping) return;
        // Without its writer ingest can ack nothing: exit, and let the supervisor restart the collector.
        logger.fatal({ err: error.message }, 'the SQLite writer thread died');
        process.exit(1);
      });
      // Loaded here: the server (fastify, the API) costs every other command ~1 s of start-up.
      const { startCollector } = await import('./server.ts');
      let collector: Awaited<ReturnType<typeof startCollector>>;
      try {
        await writer.ready();
        const tls = values['tls-cert'] ? { cert: readFileSync(values['tls-cert'], 'utf8'), key: readFileSync(values['tls-key']!, 'utf8') } : undefined;
        collector = await startCollector({
          store, host: match[1]!.replace(/^\[|\]$/g, ''), port: Number(match[2]), logger, commitMany: (commits) => writer.commitMany(commits), ...(tls ? { tls } : {}),
        });
      } catch (error) {
        stopping = true;
        await writer.close();
        store.close();
        throw error;
      }
      console.log(`omwatch-collector listening on ${collector.url}`);
      await new Promise<void>((resolve) => {
        for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => resolve());
      });
      logger.info('stopping');
      stopping = true;
      await collector.close();
      await writer.close();
      store.close();
      return 0;
    }
    case 'token': {
      const [sub, ...rest] = args;
      const { values, positionals } = parse(`token ${sub ?? ''}`, rest, { role: { type: 'string' }, name: { type: 'string' }, data: { type: 'string' }, json: { type: 'boolean' } });
      if (values.help) return help();
      const store = openStore(required('token', values.data, '--data DIR'));
      try {
        if (sub === 'create') {
          const role = values.role as Role;
          if (!ROLES.includes(role)) throw new UsageError(`omwatch-collector token create: --role must be one of ${ROLES.join(', ')}, got ${JSON.stringify(values.role ?? '')}`);
          const secret = newSecret('omwt');
          const token = store.createToken({ id: uuidv7(), role, name: values.name ?? role, secretHash: secretHash(secret) });
          console.log(`created ${role} token ${token.id} (${printable(token.name)}); it is shown once, below`);
          console.log(secret);
          return 0;
        }
        if (sub === 'list') {
          const tokens = store.listTokens();
          if (values.json) {
            for (const t of tokens) console.log(JSON.stringify(t));
          } else {
            console.log(table([['ID', 'ROLE', 'NAME', 'CREATED', 'LAST USED', 'REVOKED'], ...tokens.map((t) => [t.id, t.role, printable(t.name), t.createdAt, t.lastUsedAt ?? '-', t.revokedAt ?? '-'])]));
          }
          return 0;
        }
        if (sub === 'revoke') {
          const id = positionals[0];
          if (!id) throw new UsageError('omwatch-collector token revoke: name the token ID');
          if (!store.revokeToken(id)) {
            console.error(`omwatch-collector: no active token ${printable(id)}`);
            return 1;
          }
          console.log(`revoked token ${id}`);
          return 0;
        }
        throw new UsageError(`omwatch-collector token: unknown subcommand '${sub ?? ''}' (create, list or revoke)`);
      } finally {
        store.close();
      }
    }
    case 'agents': {
      const { values, positionals } = parse('agents', args, { data: { type: 'string' }, json: { type: 'boolean' } });
      if (values.help) return help();
      const store = openStore(required('agents', values.data, '--data DIR'));
      try {
        if (positionals[0] === 'revoke') {
          const id = positionals[1];
          if (!id) throw new UsageError('omwatch-collector agents revoke: name the agent ID');
          if (!store.revokeAgent(id)) {
            console.error(`omwatch-collector: no active agent ${printable(id)}`);
            return 1;
          }
          console.log(`revoked agent ${id}`);
          return 0;
        }
        if (positionals.length > 0) throw new UsageError(`omwatch-collector agents: unknown subcommand '${positionals[0]}' (revoke)`);
        const agents = store.listAgents();
        if (values.json) {
          for (const a of agents) console.log(JSON.stringify(a));
        } else {
          console.log(table([['ID', 'NAME', 'ENROLLED', 'LAST SEEN', 'REVOKED'], ...agents.map((a) => [a.id, printable(a.name), a.enrolledAt, a.lastSeenAt ?? '-', a.revokedAt ?? '-'])]));
        }
        return 0;
      } finally {
        store.close();
      }
    }
    case 'tail': {
      const { values } = parse('tail', args, { url: { type: 'string' }, token: { type: 'string' }, ca: { type: 'string' }, json: { type: 'boolean' } });
      if (values.help) return help();
      const token = values.token ?? process.env['OMWATCH_TOKEN'];
      if (!token) throw new UsageError('omwatch-collector tail: --token T (or OMWATCH_TOKEN) is required');
      return tail(required('tail', values.url, '--url URL'), token, values.ca ? readFileSync(values.ca, 'utf8') : undefined, Boolean(values.json));
    }
    case 'export': {
      const { values, positionals } = parse('export', args, {
        data: { type: 'string' }, since: { type: 'string' }, until: { type: 'string' }, host: { type: 'string' }, format: { type: 'string' },
        session: { type: 'string' }, out: { type: 'string' },
      });
      if (values.help) return help();
      if (positionals.length > 0) throw new UsageError(`omwatch-collector export: unexpected '${positionals[0]}'`);
      const format = values.format ?? 'jsonl';
      if (!isExportFormat(format)) throw new UsageError(`omwatch-collector export: --format must be jsonl, csv or asciicast, got ${JSON.stringify(values.format)}`);
      const filter = exportFilterOf(values);
      const dataDir = required('export', values.data, '--data DIR');
      const { out } = values;
      if (out === '') throw new UsageError('omwatch-collector export: --out must name a directory (or, for one session\'s .cast, a file)');
      // --out is a bundle directory, except in the single-session form kept from before bundles:
      // --format asciicast --session ID --out FILE, where FILE neither ends in / nor is a directory.
      const outIsDirectory = out !== undefined && (out.endsWith('/') || statSync(out, { throwIfNoEntry: false })?.isDirectory() === true);
      const oneCast = format === 'asciicast' && values.session !== undefined && !outIsDirectory;
      if (out !== undefined && !oneCast) return exportBundle(dataDir, out, format, filter);
      if (format === 'asciicast') {
        const session = required('export --format asciicast', values.session, '--session ID');
        for (const flag of ['since', 'until', 'host'] as const) {
          if (values[flag] !== undefined) throw new UsageError(`omwatch-collector export: --${flag} selects the sessions of a bundle; one session's .cast takes --session alone (for a bundle, give --out DIR/)`);
        }
        return exportCast(dataDir, session, out);
      }
      const store = openStore(dataDir);
      try {
        return await withAccessLog(store, 'export', exportTarget({ format, ...filterFields(filter) }), async () => {
          // On a terminal the rows themselves are the progress; a count goes to stderr only beside a redirect.
          const progress = progressLine('exporting', !process.stdout.isTTY);
          try {
            const recordFilter = { includeCollectorAlerts: true, ...filter };
            const lines = format === 'csv' ? exportCsvLines(store, recordFilter) : exportLines(store, recordFilter);
            const lineBreak = format === 'csv' ? CSV_LINE_BREAK : '\n';
            let written = format === 'csv' ? -1 : 0;
            for (const line of lines) {
              if (!process.stdout.write(`${line}${lineBreak}`)) await new Promise((resolve) => process.stdout.once('drain', resolve));
              if (++written > 0 && written % 1_000 === 0) progress.update(written);
            }
          } finally {
            progress.done();
          }
          return 0;
        });
      } finally {
        store.close();
      }
    }
    case 'sessions': {
      const { values, positionals } = parse('sessions', args, { data: { type: 'string' }, json: { type: 'boolean' }, url: { type: 'string' }, token: { type: 'string' }, ca: { type: 'string' } });
      if (values.help) return help();
      const [sub, id, ...extra] = positionals;
      if (sub === 'live' || sub === 'kill') {
        if (extra.length > 0 || (sub === 'live' && id !== undefined)) throw new UsageError(`omwatch-collector sessions ${sub}: unexpected '${extra[0] ?? id}'`);
        const token = values.token ?? process.env['OMWATCH_TOKEN'];
        if (!token) throw new UsageError(`omwatch-collector sessions ${sub}: --token T (or OMWATCH_TOKEN) is required`);
        const target = { url: required(`sessions ${sub}`, values.url, '--url URL'), token, caPem: values.ca ? readFileSync(values.ca, 'utf8') : undefined };
        if (sub === 'live') return liveSessions(target, Boolean(values.json));
        return killSession(target, required('sessions kill', id, 'the session ID'));
      }
      if (sub !== undefined) throw new UsageError(`omwatch-collector sessions: unknown subcommand '${sub}' (live or kill)`);
      const store = openStore(required('sessions', values.data, '--data DIR'));
      try {
        const sessions = listSessions(store);
        if (values.json) {
          for (const session of sessions) console.log(JSON.stringify(session));
        } else {
          console.log(table([
            ['ID', 'HOST', 'USER', 'TICKET', 'START', 'END', 'STATE'],
            ...sessions.map((s) => [
              printable(s.id), printable(s.host), printable(s.user ?? '-'), printable(s.ticket ?? '-'), s.start, s.end ?? '-',
              `${s.state}${s.endedBy && s.endedBy !== 'exit' ? ` (${printable(s.endedBy)})` : ''}${s.flagged ? ' flagged' : ''}`,
            ]),
          ]));
        }
        return 0;
      } finally {
        store.close();
      }
    }
    case 'verify': {
      const { values, positionals } = parse('verify', args, { data: { type: 'string' }, export: { type: 'string' }, json: { type: 'boolean' } });
      if (values.help) return help();
      if (positionals.length > 0) throw new UsageError(`omwatch-collector verify: unexpected '${positionals[0]}'`);
      if (values.export !== undefined) return verifyBundle(values.export, values.data, Boolean(values.json));
      const store = openStore(required('verify', values.data, '--data DIR'));
      try {
        const verdicts = verifyStore(store);
        for (const v of verdicts) {
          if (values.json) console.log(JSON.stringify(v));
          else console.log(`${v.ok ? 'ok    ' : 'BROKEN'} stream ${v.stream} (agent ${v.agentId}): ${v.records} records, seq ${v.firstSeq}–${v.lastSeq}, ${v.declaredGaps.length} declared gaps${v.firstBroken ? `; first broken: seq ${v.firstBroken.seq}: ${printable(v.firstBroken.reason)}` : ''}`);
        }
        if (!values.json) console.log(`${verdicts.length} streams, ${verdicts.filter((v) => !v.ok).length} broken`);
        return verdicts.every((v) => v.ok) ? 0 : 1;
      } finally {
        store.close();
      }
    }
    case 'version':
    case '--version':
      console.log(VERSION);
      return 0;
    case 'help':
    case '--help':
    case '-h':
    case undefined:
      return help();
    default:
      throw new UsageError(`omwatch-collector: unknown command '${command}'`);
  }
}

interface ApiTarget {
  url: string;
  token: string;
  caPem: string | undefined;
}

/** One call to the collector's HTTP API; the CA, when given, is the only one trusted. */
async function callApi(target: ApiTarget, method: 'GET' | 'POST', path: string): Promise<{ status: number; body: unknown }> {
  const url = new URL(path.replace(/^\//, ''), target.url.endsWith('/') ? target.url : `${target.url}/`);
  const { request } = url.protocol === 'https:' ? await import('node:https') : await import('node:http');
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers: { authorization: `Bearer ${target.token}` }, timeout: 10_000, ...(target.caPem ? { ca: target.caPem } : {}) }, (response) => {
      let text = '';
      response.on('data', (chunk: Buffer) => (text += chunk.toString()));
      response.on('end', () => {
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // Kept as text.
        }
        resolve({ status: response.statusCode ?? 0, body });
      });
    });
    req.on('timeout', () => req.destroy(new Error('no answer in 10 s')));
    req.on('error', reject);
    req.end();
  });
}

function apiError(body: unknown): string {
  return printable(typeof body === 'object' && body !== null && 'error' in body ? (body as { error: unknown }).error : body);
}

async function liveSessions(target: ApiTarget, json: boolean): Promise<number> {
  const { status, body } = await callApi(target, 'GET', `${SESSIONS_PATH}/live`);
  if (status !== 200) {
    console.error(`omwatch-collector sessions live: HTTP ${status}: ${apiError(body)}`);
    return 1;
  }
  const live = (body as { sessions: Array<{ sessionId: string; agentId: string; user: string; startedAt: string }> }).sessions;
  if (json) for (const s of live) console.log(JSON.stringify(s));
  else console.log(table([['ID', 'AGENT', 'USER', 'STARTED'], ...live.map((s) => [printable(s.sessionId), printable(s.agentId), printable(s.user), printable(s.startedAt)])]));
  return 0;
}

async function killSession(target: ApiTarget, id: string): Promise<number> {
  const { status, body } = await callApi(target, 'POST', `${SESSIONS_PATH}/${encodeURIComponent(id)}/kill`);
  if (status !== 202) {
    console.error(`omwatch-collector sessions kill: HTTP ${status}: ${apiError(body)}`);
    return 1;
  }
  console.log(`asked the agent to end session ${printable(id)}; its end event records who ended it`);
  return 0;
}

async function tail(url: string, token: string, caPem: string | undefined, json: boolean): Promise<number> {
  const ws = new WebSocket(webSocketUrl(url, LIVE_PATH), { headers: { authorization: `Bearer ${token}` }, ...(caPem ? { ca: caPem } : {}) });
  return new Promise<number>((resolve) => {
    ws.on('unexpected-response', (_request, response) => {
      console.error(`omwatch-collector tail: the collector refused: HTTP ${response.statusCode}`);
      resolve(1);
    });
    ws.on('error', (error) => {
      console.error(`omwatch-collector tail: ${error.message}`);
      resolve(1);
    });
    ws.on('open', () => console.error(`omwatch-collector tail: connected to ${url}; waiting for alerts`));
    ws.on('message', (data) => {
      const text = data.toString();
      if (json) {
        console.log(text);
        return;
      }
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        console.error(`omwatch-collector tail: ignored a frame that is not JSON: ${printable(text.slice(0, 200))}`);
        return;
      }
      const frame = LiveAlertFrameSchema.safeParse(value);
      if (!frame.success) return;
      const { alert, agentId } = frame.data;
      const collectorAlert = alert['collectorAlert'] as { time?: string; type?: string; summary?: string } | undefined;
      if (collectorAlert) {
        console.log(printable(`${collectorAlert.time}  collector  ${collectorAlert.type}  ${collectorAlert.summary}`));
        return;
      }
      const rule = alert['rule'] as { level?: string; title?: string } | undefined;
      const host = alert['host'] as { name?: string } | undefined;
      console.log([alert['time'], rule?.level, host?.name ?? agentId, rule?.title, alert['summary']].map(printable).join('  '));
    });
    ws.on('close', () => resolve(0));
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => ws.close());
  });
}

function isExportFormat(format: string): format is ExportFormat {
  return (EXPORT_FORMATS as readonly string[]).includes(format);
}

/** The export filter from the command line, times as ISO instants; a bad value names its flag. */
function exportFilterOf(values: { since?: string | undefined; until?: string | undefined; host?: string | undefined; session?: string | undefined }): BundleFilter {
  const time = (flag: 'since' | 'until') => {
    const value = values[flag];
    if (value === undefined) return undefined;
    const ms = Date.parse(value);
    if (Number.isNaN(ms)) throw new UsageError(`omwatch-collector export: --${flag} must be an ISO time, got ${JSON.stringify(value)}`);
    return new Date(ms).toISOString();
  };
  const since = time('since');
  const until = time('until');
  if (since !== undefined && until !== undefined && since >= until) throw new UsageError(`omwatch-collector export: --since ${since} must be before --until ${until}`);
  for (const flag of ['host', 'session'] as const) {
    if (values[flag] === '') throw new UsageError(`omwatch-collector export: --${flag} must not be empty`);
  }
  return {
    ...(since === undefined ? {} : { since }),
    ...(until === undefined ? {} : { until }),
    ...(values.host === undefined ? {} : { hostId: values.host }),
    ...(values.session === undefined ? {} : { sessionId: values.session }),
  };
}

/** `\r`-updated progress on stderr, on a terminal only: on a pipe or in a file it would be noise. */
function progressLine(verb: string, wanted = true): { update(records: number): void; done(): void } {
  if (!wanted || !process.stderr.isTTY) return { update() {}, done() {} };
  let shownAt = 0;
  return {
    update(records) {
      const now = Date.now();
      if (now - shownAt < 100) return;
      shownAt = now;
      process.stderr.write(`\r${verb} ${records.toLocaleString('en-US')} records…`);
    },
    done() {
      if (shownAt > 0) process.stderr.write('\r\u001b[K');
    },
  };
}

/** Writes an export bundle; exit 1 if a session asked for is not stored (or cannot be rebuilt). */
async function exportBundle(dataDir: string, out: string, format: ExportFormat, filter: BundleFilter): Promise<number> {
  const found = statSync(out, { throwIfNoEntry: false });
  if (found && !found.isDirectory()) throw new UsageError(`omwatch-collector export: --out ${out} is a file; a bundle is a directory (new or empty)`);
  if (found && readdirSync(out).length > 0) throw new UsageError(`omwatch-collector export: --out ${out} is not empty; a bundle goes to a new or empty directory`);
  if (!found && format !== 'asciicast' && /\.(jsonl|csv|json|cast)$/i.test(out)) {
    throw new UsageError(`omwatch-collector export: --out ${out} looks like a file name, but --out names a bundle directory; for plain ${format} leave out --out and redirect stdout`);
  }
  const store = openStore(dataDir);
  try {
    return await withAccessLog(store, 'export bundle', exportTarget({ format, ...filterFields(filter), out: absolutePath(out) }), () => {
      const progress = progressLine('exporting');
      let result: BundleResult;
      try {
        result = writeExportBundle(store, { dir: out, format, filter, collectorVersion: VERSION, onProgress: (records) => progress.update(records) });
      } catch (error) {
        if (!(error instanceof ExportError) || error.code !== 'EXPORT_NO_SESSION') throw error;
        console.error(`omwatch-collector: ${printable(error.message)}`);
        return 1;
      } finally {
        progress.done();
      }
      for (const warning of result.warnings) console.error(`omwatch-collector: ${printable(warning)}`);
      const { manifest } = result;
      const sessions = format === 'asciicast' ? `${counted(manifest.sessions.length, 'session')}, ` : '';
      const streams = new Set(manifest.streams.map((h) => h.stream)).size;
      console.log(`exported ${sessions}${counted(manifest.records, 'record')} of ${counted(streams, 'stream')} and ${counted(manifest.collectorAlerts, 'collector alert')} to ${printable(out)} (${counted(manifest.files.length, 'file')} and manifest.json); check it with: omwatch-collector verify --export ${printable(out)}`);
      return 0;
    });
  } finally {
    store.close();
  }
}

function counted(n: number, what: string): string {
  return `${n.toLocaleString('en-US')} ${what}${n === 1 ? '' : 's'}`;
}

/** Checks an export bundle offline, and against the collector's store if given; exit 0 verified, 1 altered. */
function verifyBundle(dir: string, dataDir: string | undefined, json: boolean): number {
  const found = dir === '' ? undefined : statSync(dir, { throwIfNoEntry: false });
  if (!found?.isDirectory()) throw new UsageError(`omwatch-collector verify: --export must name an export directory, got ${JSON.stringify(dir)} (${found ? 'not a directory' : 'no such directory'})`);
  // An empty store made here would only make every record look forged: the store must be there.
  if (dataDir !== undefined && statSync(join(dataDir, 'collector.db'), { throwIfNoEntry: false })?.isFile() !== true) {
    throw new UsageError(`omwatch-collector verify: --data must name a collector's data directory (one holding collector.db), got ${JSON.stringify(dataDir)}`);
  }
  const store = dataDir === undefined ? undefined : openStore(dataDir);
  const progress = progressLine('verifying');
  let verdict: ReturnType<typeof verifyExport>;
  try {
    verdict = verifyExport(dir, { onProgress: (records) => progress.update(records), ...(store ? { store } : {}) });
  } finally {
    progress.done();
    store?.close();
  }
  if (json) {
    console.log(JSON.stringify(verdict));
    return verdict.ok ? 0 : 1;
  }
  const where = (p: ExportProblem) => `${p.file}${p.line === undefined ? '' : ` line ${p.line}`}${p.stream === undefined ? '' : ` (stream ${p.stream}${p.seq === undefined ? '' : ` seq ${p.seq}`})`}`;
  for (const p of verdict.problems) console.log(`ALTERED ${printable(where(p))}: ${printable(p.reason)}`);
  if (verdict.problemCount > verdict.problems.length) console.log(`… and ${verdict.problemCount - verdict.problems.length} more`);
  if (!verdict.ok) {
    const first = verdict.firstAltered!;
    console.log(`export ${printable(dir)} ALTERED: ${counted(verdict.problemCount, 'problem')}; first: ${printable(where(first))}: ${printable(first.reason)}`);
    return 1;
  }
  for (const head of verdict.heads) {
    console.log(printable(`ok     stream ${head.stream} (agent ${head.agentId}) in ${head.file}: ${counted(head.records, 'record')}, seq ${head.firstSeq}–${head.lastSeq}${head.contiguous ? ', contiguous' : `, ${counted(head.missing.length, 'range')} left out`}; prev of the first ${head.firstPrev}, hash of the last ${head.lastHash}`));
  }
  const { declared, byFilter } = verdict.leftOut;
  if (declared > 0) {
    console.log(`ok     ${counted(declared, 'range')} of seqs left out ${declared === 1 ? 'is a drop' : 'are drops'} declared by ${declared === 1 ? 'its' : 'their'} agent (a buffer_dropped record in the bundle, its hashes meeting the records on both sides)`);
  }
  if (byFilter > 0) {
    const by = verdict.format === 'asciicast' ? 'by taking only each session\'s records' : `by the filter (${printable(exportTarget(filterFields(verdict.filter ?? {})))})`;
    if (verdict.againstStore) {
      console.log(`ok     ${counted(byFilter, 'range')} of seqs left out ${by}: in the store, outside it or declared dropped by ${byFilter === 1 ? 'its' : 'their'} agent`);
    } else {
      console.log(`NOTE   ${counted(byFilter, 'range')} of seqs ${byFilter === 1 ? 'was' : 'were'} left out ${by} and cannot be checked offline: verify cannot see records the export did not take, so that the filter and not an edit left them out rests on the manifest's word; check them against the collector's store with: omwatch-collector verify --export ${printable(dir)} --data STORE`);
    }
  }
  if (verdict.againstStore) {
    console.log(`ok     checked against the store in ${printable(dataDir)}: every record exported is the store's, and every seq left out is outside the filter there or a gap its agent declared`);
  }
  const sessions = verdict.sessions > 0 ? `, ${counted(verdict.sessions, 'session recording')}` : '';
  console.log(`verified export ${printable(dir)} (${verdict.format}, exported ${verdict.exportedAt} by collector ${printable(verdict.collectorVersion)}): ${counted(verdict.files, 'file')}, ${counted(verdict.records, 'record')} in ${counted(verdict.heads.length, 'chain segment')}${sessions}; every file, record, link and chain head is as the manifest says`);
  return 0;
}

/** Writes a session's recording as asciicast v2; exit 1 when chunks are missing (the file would look whole). */
async function exportCast(dataDir: string, sessionId: string, out: string | undefined): Promise<number> {
  const store = openStore(dataDir);
  try {
    return await withAccessLog(store, 'export asciicast', exportTarget({ session: sessionId, out: out ? absolutePath(out) : undefined }), () => {
      let result: ReturnType<typeof sessionCast>;
      try {
        result = sessionCast(store, sessionId);
      } catch (error) {
        if (!(error instanceof SessionNotFoundError)) throw error;
        console.error(`omwatch-collector: ${printable(error.message)}`);
        return 1;
      }
      if (out) writeFileSync(out, result.cast, { mode: 0o600 });
      else process.stdout.write(result.cast);
      if (!result.ended) console.error(`omwatch-collector: session ${sessionId} has no end stored yet (live, or its agent has not delivered it): the recording may continue`);
      if (result.missingCount > 0) {
        console.error(`omwatch-collector: session ${sessionId}: recording chunks ${rangesText(result.missing)} (${result.missingCount} in all) are not in the store (dropped by the agent's buffer or not yet delivered); the file lacks them`);
        return 1;
      }
      return 0;
    });
  } finally {
    store.close();
  }
}

/** Who runs the CLI, for the access log: the OS user, or the uid where the user has no name (no passwd entry). */
function cliUser(): string {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return `cli:${process.getuid?.() ?? 'unknown'}`;
  }
}

/** The access-log entry a reader going away still gets: an export to stdout then exits at once (EPIPE). */
let accessOnExit: (() => void) | undefined;

/**
 * Runs an export and writes its access-log entry (design.md §8: every read of evidence is logged, CLI
 * ones as `cli:<OS user>`): status 0 if it ends with exit 0, else 1, also when it throws. An entry that
 * cannot be written fails the command (after a failure, the failure is the one reported).
 */
async function withAccessLog(store: Store, action: string, target: string, run: () => number | Promise<number>): Promise<number> {
  const log = (status: number) => {
    accessOnExit = undefined;
    store.logAccess({ at: new Date().toISOString(), tokenId: 'cli', by: cliUser(), action, target, status });
  };
  accessOnExit = () => log(1);
  let code: number;
  try {
    code = await run();
  } catch (error) {
    try {
      log(1);
    } catch (logError) {
      // The export's own failure is the one to exit with; this one is said beside it.
      console.error(`omwatch-collector: the export's access-log entry could not be written: ${(logError as Error).message}`);
    }
    throw error;
  }
  log(code === 0 ? 0 : 1);
  return code;
}

/** A filter as access-log and note fields. */
function filterFields(filter: BundleFilter): Record<string, string | undefined> {
  return { since: filter.since, until: filter.until, host: filter.hostId, session: filter.sessionId };
}

/** `key=value …` of the fields given, a value quoted when it holds spaces, quotes or control characters; at most 1,000 characters. */
function exportTarget(fields: Record<string, string | undefined>): string {
  return Object.entries(fields)
    .filter((field): field is [string, string] => field[1] !== undefined)
    .map(([key, value]) => `${key}=${/^[\x21-\x7e]*$/.test(value) && !value.includes('"') ? value : JSON.stringify(value)}`)
    .join(' ')
    .slice(0, 1_000);
}

function help(): number {
  console.log(USAGE);
  return 0;
}

process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') {
    // The reader went away before the export was whole: it is logged as failed before the exit.
    try {
      accessOnExit?.();
    } catch (logError) {
      console.error(`omwatch-collector: the export's access-log entry could not be written: ${(logError as Error).message}`);
    }
    process.exit(process.exitCode ?? 0);
  }
  throw error;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError) {
      console.error(`${error.message}\n\n${USAGE}`);
      process.exitCode = 2;
    } else if (error instanceof CollectorConfigError) {
      console.error(`omwatch-collector: ${error.message}`);
      process.exitCode = 2;
    } else {
      console.error(`omwatch-collector: ${(error as Error).message}`);
      process.exitCode = 1;
    }
  },
);
