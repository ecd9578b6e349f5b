// The collector's embedded store (design.md §9): one SQLite file in WAL mode behind the Store contract.
// A batch is committed in one durable transaction (synchronous FULL) before ingest acks it (§5).
import Database from 'better-sqlite3';
import { GENESIS } from '../../protocol/chain.ts';
import type {
  AccessEntry,
  Agent,
  AlertListing,
  CollectorAlert,
  Commit,
  Gap,
  IngestRecord,
  PageCursor,
  RecordFilter,
  Role,
  Store,
  StoredRecord,
  StreamState,
  Token,
  TriageEntry,
  TriageState,
} from '../types.ts';

/** The schema this code writes, kept in `PRAGMA user_version`; bump it with a migration step. */
export const SCHEMA_VERSION = 3;

export interface SqliteStoreOptions {
  /**
   * FULL (default) syncs the WAL on every commit, so an acked batch survives power loss; NORMAL syncs
   * only at checkpoints, faster but a crash of the machine may lose the last acked batches.
   */
  synchronous?: 'FULL' | 'NORMAL';
  /** How long a statement waits for another connection's lock before failing. */
  busyTimeoutMs?: number;
}

const defaultOptions: Required<SqliteStoreOptions> = { synchronous: 'FULL', busyTimeoutMs: 5_000 };

export type StoreErrorCode =
  | 'STORE_OPEN_FAILED'
  | 'STORE_NOT_A_DATABASE'
  | 'STORE_FOREIGN_DATABASE'
  | 'STORE_TOO_NEW'
  | 'STORE_UNKNOWN_STREAM'
  | 'STORE_UNKNOWN_GAP'
  | 'STORE_CONSTRAINT'
  | 'STORE_BAD_RECORD'
  | 'STORE_BAD_ALERT'
  | 'STORE_BAD_FILTER';

export class StoreError extends Error {
  readonly code: StoreErrorCode;
  constructor(code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreError';
    this.code = code;
  }
}

const SCHEMA_3 = `
-- An alert's triage: its current state, and every step kept (who, when, what they wrote).
CREATE TABLE triage (
  alert_id   TEXT PRIMARY KEY,
  state      TEXT NOT NULL CHECK (state IN ('open', 'acknowledged', 'closed')),
  assignee   TEXT,
  updated_at TEXT NOT NULL
) STRICT;
CREATE TABLE triage_history (
  id       INTEGER PRIMARY KEY,
  alert_id TEXT NOT NULL,
  at       TEXT NOT NULL,
  by       TEXT NOT NULL,
  action   TEXT NOT NULL CHECK (action IN ('acknowledge', 'assign', 'close', 'reopen')),
  state    TEXT NOT NULL,
  assignee TEXT,
  comment  TEXT
) STRICT;
CREATE INDEX triage_history_alert ON triage_history (alert_id, id);
-- Who read which evidence (auditors) and who changed what; append-only through the API.
CREATE TABLE access_log (
  id       INTEGER PRIMARY KEY,
  at       TEXT NOT NULL,
  token_id TEXT NOT NULL,
  by       TEXT NOT NULL,
  action   TEXT NOT NULL,
  target   TEXT NOT NULL,
  status   INTEGER NOT NULL
) STRICT;
CREATE INDEX records_id ON records (id);
CREATE INDEX records_kind_page ON records (kind, time_ms DESC, stream DESC, seq DESC);
CREATE INDEX records_category_page ON records (category, time_ms DESC, stream DESC, seq DESC) WHERE category IS NOT NULL;
`;

// Times are kept as received (ISO text) and, for filtering and ordering, as epoch milliseconds: ISO
// strings of different precision do not sort as text ("…00Z" sorts after "…00.5Z").
const SCHEMA = `
CREATE TABLE tokens (
  id           TEXT PRIMARY KEY,
  role         TEXT NOT NULL CHECK (role IN ('enroll', 'admin', 'analyst', 'auditor')),
  name         TEXT NOT NULL,
  secret_hash  TEXT NOT NULL UNIQUE,
  created_at   TEXT NOT NULL,
  revoked_at   TEXT,
  last_used_at TEXT
) STRICT;

CREATE TABLE agents (
  id            TEXT PRIMARY KEY,
  name          TEXT NOT NULL,
  host_id       TEXT,
  key_hash      TEXT NOT NULL UNIQUE,
  -- The enrollment token's id, kept for audit; not a foreign key so an agent can be enrolled by other means.
  enrolled_with TEXT NOT NULL,
  enrolled_at   TEXT NOT NULL,
  revoked_at    TEXT,
  last_seen_at  TEXT
) STRICT;

CREATE TABLE streams (
  stream     TEXT PRIMARY KEY,
  agent_id   TEXT NOT NULL REFERENCES agents (id),
  acked_seq  INTEGER NOT NULL CHECK (acked_seq >= 0),
  last_hash  TEXT NOT NULL,
  created_at TEXT NOT NULL
) STRICT;
CREATE INDEX streams_agent ON streams (agent_id);

CREATE TABLE records (
  stream      TEXT NOT NULL REFERENCES streams (stream),
  seq         INTEGER NOT NULL CHECK (seq > 0),
  agent_id    TEXT NOT NULL REFERENCES agents (id),
  kind        TEXT NOT NULL CHECK (kind IN ('event', 'alert')),
  id          TEXT NOT NULL,
  time        TEXT NOT NULL,
  time_ms     INTEGER NOT NULL,
  host_id     TEXT,
  category    TEXT,
  session_id  TEXT,
  hash        TEXT NOT NULL,
  prev        TEXT NOT NULL,
  body        TEXT NOT NULL,
  received_at TEXT NOT NULL,
  PRIMARY KEY (stream, seq)
) STRICT;
CREATE INDEX records_time ON records (time_ms);
CREATE INDEX records_host ON records (host_id, time_ms);
CREATE INDEX records_kind ON records (kind, time_ms);
CREATE INDEX records_session ON records (session_id, category) WHERE session_id IS NOT NULL;

CREATE TABLE gaps (
  stream      TEXT NOT NULL REFERENCES streams (stream),
  from_seq    INTEGER NOT NULL CHECK (from_seq > 0),
  to_seq      INTEGER NOT NULL,
  before_hash TEXT NOT NULL,
  after_prev  TEXT NOT NULL,
  opened_at   TEXT NOT NULL,
  declared_at TEXT,
  alerted_at  TEXT,
  PRIMARY KEY (stream, from_seq),
  CHECK (to_seq >= from_seq)
) STRICT;

-- No foreign keys: the collector's own alert must be recorded even when what it names is not.
CREATE TABLE collector_alerts (
  id       TEXT PRIMARY KEY,
  time     TEXT NOT NULL,
  time_ms  INTEGER NOT NULL,
  type     TEXT NOT NULL CHECK (type IN ('chain_broken', 'agent_offline')),
  agent_id TEXT,
  stream   TEXT,
  summary  TEXT NOT NULL,
  details  TEXT NOT NULL
) STRICT;
CREATE INDEX collector_alerts_time ON collector_alerts (time_ms, id);
${SCHEMA_3}`;

/** Steps from one schema version to the next: [the version it reaches, its SQL]. */
const MIGRATIONS: Array<[number, string]> = [
  // 2: a session's records (recordings, commands) are read by session.
  [2, 'CREATE INDEX records_session ON records (session_id, category) WHERE session_id IS NOT NULL;'],
  // 3: alert triage, the access log, and newest-first pages for the API.
  [3, SCHEMA_3],
];

interface TokenRow {
  id: string;
  role: Role;
  name: string;
  created_at: string;
  revoked_at: string | null;
  last_used_at: string | null;
}

interface AgentRow {
  id: string;
  name: string;
  host_id: string | null;
  enrolled_at: string;
  revoked_at: string | null;
  last_seen_at: string | null;
}

interface StreamRow {
  stream: string;
  agent_id: string;
  acked_seq: number;
  last_hash: string;
}

interface RecordRow {
  stream: string;
  seq: number;
  agent_id: string;
  kind: 'event' | 'alert';
  id: string;
  time: string;
  host_id: string | null;
  category: string | null;
  session_id: string | null;
  hash: string;
  prev: string;
  body: string;
  received_at: string;
}

interface TriageRow {
  alert_id: string;
  at: string;
  by: string;
  action: TriageEntry['action'];
  state: TriageState;
  assignee: string | null;
  comment: string | null;
}

interface AccessRow {
  id: number;
  at: string;
  token_id: string;
  by: string;
  action: string;
  target: string;
  status: number;
}

interface GapRow {
  stream: string;
  from_seq: number;
  to_seq: number;
  before_hash: string;
  after_prev: string;
  opened_at: string;
  declared_at: string | null;
  alerted_at: string | null;
}

interface AlertRow {
  id: string;
  time: string;
  type: CollectorAlert['type'];
  agent_id: string | null;
  stream: string | null;
  summary: string;
  details: string;
}

// Secret and key hashes are looked up by, never read back.
const TOKEN_COLUMNS = 'id, role, name, created_at, revoked_at, last_used_at';
const AGENT_COLUMNS = 'id, name, host_id, enrolled_at, revoked_at, last_seen_at';
const RECORD_COLUMNS = 'stream, seq, agent_id, kind, id, time, host_id, category, session_id, hash, prev, body, received_at';
const ALERT_COLUMNS = 'id, time, type, agent_id, stream, summary, details';

/** Opens (creating if needed) the collector database at `path`; its folder must exist. */
export function openSqliteStore(path: string, options: SqliteStoreOptions = {}): Store {
  const settings = { ...defaultOptions, ...options };
  const db = openDatabase(path, settings);

  const sql = {
    insertToken: db.prepare(
      'INSERT INTO tokens (id, role, name, secret_hash, created_at) VALUES (@id, @role, @name, @secretHash, @createdAt)',
    ),
    tokenBySecretHash: db.prepare<[string], TokenRow>(`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE secret_hash = ?`),
    listTokens: db.prepare<[], TokenRow>(`SELECT ${TOKEN_COLUMNS} FROM tokens ORDER BY created_at, id`),
    revokeToken: db.prepare<[string, string]>('UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL'),
    touchToken: db.prepare<[string, string]>('UPDATE tokens SET last_used_at = ? WHERE id = ?'),

    insertAgent: db.prepare(
      `INSERT INTO agents (id, name, host_id, key_hash, enrolled_with, enrolled_at)
       VALUES (@id, @name, @hostId, @keyHash, @enrolledWith, @enrolledAt)`,
    ),
    agentById: db.prepare<[string], AgentRow>(`SELECT ${AGENT_COLUMNS} FROM agents WHERE id = ?`),
    agentByKeyHash: db.prepare<[string], AgentRow>(`SELECT ${AGENT_COLUMNS} FROM agents WHERE key_hash = ?`),
    listAgents: db.prepare<[], AgentRow>(`SELECT ${AGENT_COLUMNS} FROM agents ORDER BY enrolled_at, id`),
    revokeAgent: db.prepare<[string, string]>('UPDATE agents SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL'),
    agentSeen: db.prepare<[string, string]>('UPDATE agents SET last_seen_at = ? WHERE id = ?'),

    stream: db.prepare<[string], StreamRow>('SELECT stream, agent_id, acked_seq, last_hash FROM streams WHERE stream = ?'),
    streams: db.prepare<[], StreamRow>('SELECT stream, agent_id, acked_seq, last_hash FROM streams ORDER BY stream'),
    claimStream: db.prepare<[string, string, string, string]>(
      `INSERT INTO streams (stream, agent_id, acked_seq, last_hash, created_at) VALUES (?, ?, 0, ?, ?)
       ON CONFLICT (stream) DO NOTHING`,
    ),
    // The mark only moves forward: a batch committed again after a lost ack must not take it back.
    advanceStream: db.prepare(
      `UPDATE streams SET acked_seq = @ackedSeq, last_hash = @lastHash
       WHERE stream = @stream AND acked_seq <= @ackedSeq`,
    ),
    // ON CONFLICT on the key only, not INSERT OR IGNORE: OR IGNORE would also skip, silently, a row
    // that breaks NOT NULL or CHECK, where the whole batch must fail instead.
    insertRecord: db.prepare(
      `INSERT INTO records (${RECORD_COLUMNS}, time_ms)
       VALUES (@stream, @seq, @agentId, @kind, @id, @time, @hostId, @category, @sessionId, @hash, @prev, @body,
               @receivedAt, @timeMs)
       ON CONFLICT (stream, seq) DO NOTHING`,
    ),
    insertGap: db.prepare(
      `INSERT INTO gaps (stream, from_seq, to_seq, before_hash, after_prev, opened_at)
       VALUES (@stream, @fromSeq, @toSeq, @beforeHash, @afterPrev, @openedAt)
       ON CONFLICT (stream, from_seq) DO NOTHING`,
    ),
    gapExists: db.prepare<[string, number], number>('SELECT 1 FROM gaps WHERE stream = ? AND from_seq = ?').pluck(),
    declareGap: db.prepare<[string, string, number]>(
      'UPDATE gaps SET declared_at = ? WHERE stream = ? AND from_seq = ? AND declared_at IS NULL',
    ),
    alertGap: db.prepare<[string, string, number]>(
      'UPDATE gaps SET alerted_at = ? WHERE stream = ? AND from_seq = ? AND alerted_at IS NULL',
    ),
    gaps: db.prepare<[], GapRow>('SELECT * FROM gaps ORDER BY stream, from_seq'),
    gapsOf: db.prepare<[string], GapRow>('SELECT * FROM gaps WHERE stream = ? ORDER BY from_seq'),
    insertAlert: db.prepare(
      `INSERT INTO collector_alerts (${ALERT_COLUMNS}, time_ms)
       VALUES (@id, @time, @type, @agentId, @stream, @summary, @details, @timeMs)
       ON CONFLICT (id) DO NOTHING`,
    ),
    recordById: db.prepare<[string], RecordRow>(`SELECT ${RECORD_COLUMNS} FROM records WHERE id = ? ORDER BY received_at, stream, seq LIMIT 1`),
    recordByIdOfKind: db.prepare<[string, string], RecordRow>(
      `SELECT ${RECORD_COLUMNS} FROM records WHERE id = ? AND kind = ? ORDER BY received_at, stream, seq LIMIT 1`,
    ),
    triageState: db.prepare<[string], { state: TriageState; assignee: string | null }>('SELECT state, assignee FROM triage WHERE alert_id = ?'),
    triageHistory: db.prepare<[string], TriageRow>('SELECT * FROM triage_history WHERE alert_id = ? ORDER BY id'),
    upsertTriage: db.prepare(
      `INSERT INTO triage (alert_id, state, assignee, updated_at) VALUES (@alertId, @state, @assignee, @at)
       ON CONFLICT (alert_id) DO UPDATE SET state = excluded.state, assignee = excluded.assignee, updated_at = excluded.updated_at`,
    ),
    insertTriageHistory: db.prepare(
      `INSERT INTO triage_history (alert_id, at, by, action, state, assignee, comment)
       VALUES (@alertId, @at, @by, @action, @state, @assignee, @comment)`,
    ),
    insertAccess: db.prepare('INSERT INTO access_log (at, token_id, by, action, target, status) VALUES (@at, @tokenId, @by, @action, @target, @status)'),
    accessLog: db.prepare<[number, number], AccessRow>('SELECT * FROM access_log WHERE id < ? ORDER BY id DESC LIMIT ?'),
    counts: db.prepare<[], { records: number; alerts: number; streams: number; agents: number }>(
      `SELECT (SELECT count(*) FROM records) AS records,
              (SELECT count(*) FROM records WHERE kind = 'alert') AS alerts,
              (SELECT count(*) FROM streams) AS streams,
              (SELECT count(*) FROM agents) AS agents`,
    ),
  };
  // Collector alerts are read with a since/until filter of any shape: one statement per shape, made once.
  const alertQueries = new Map<string, Database.Statement<[Record<string, unknown>], AlertRow>>();
  // Open records() reads, each on its own connection; close() ends them (SQLite cannot close a
  // connection with a cursor open) and marks them cut, so a read ends in an error, never short and silent.
  const reads = new Set<{ reader: Database.Database; rows: IterableIterator<RecordRow>; cut: boolean }>();

  function insertAlert(alert: CollectorAlert): void {
    try {
      sql.insertAlert.run({ ...alert, timeMs: Date.parse(alert.time) });
    } catch (error) {
      throw new StoreError('STORE_BAD_ALERT', `collector alert ${alert.id}: ${messageOf(error)}`, { cause: error });
    }
  }

  const triageTransaction = db.transaction((entry: TriageEntry) => {
    sql.upsertTriage.run(entry);
    sql.insertTriageHistory.run(entry);
  });
  // Pages are read with filters of any shape: one statement per shape, made once.
  const pageQueries = new Map<string, Database.Statement<[Record<string, unknown>], RecordRow & { state?: TriageState | null; assignee?: string | null }>>();
  function page(sqlText: string, params: Record<string, unknown>) {
    let statement = pageQueries.get(sqlText);
    if (statement === undefined) {
      statement = db.prepare(sqlText);
      pageQueries.set(sqlText, statement);
    }
    return statement.all(params);
  }

  const commitTransaction = db.transaction((commit: Commit, receivedAt: string) => commitBody(commit, receivedAt));
  const commitManyTransaction = db.transaction((commits: readonly Commit[], receivedAt: string) => {
    for (const commit of commits) commitBody(commit, receivedAt);
  });

  function commitBody(commit: Commit, receivedAt: string): void {
    const owner = sql.stream.get(commit.stream);
    if (owner === undefined) {
      throw new StoreError('STORE_UNKNOWN_STREAM', `commit to stream ${commit.stream}, which was never claimed`);
    }
    for (const record of commit.records) {
      try {
        sql.insertRecord.run({ ...recordParams(record), stream: commit.stream, agentId: owner.agent_id, receivedAt });
      } catch (error) {
        // The whole transaction rolls back; the message names the record that stopped it.
        throw new StoreError('STORE_BAD_RECORD', `stream ${commit.stream} seq ${record.seq}: ${messageOf(error)}`, { cause: error });
      }
    }
    sql.advanceStream.run({ stream: commit.stream, ackedSeq: commit.state.ackedSeq, lastHash: commit.state.lastHash });
    for (const gap of commit.gapsOpened ?? []) sql.insertGap.run({ ...gap, stream: commit.stream });
    for (const fromSeq of commit.gapsDeclared ?? []) {
      if (sql.gapExists.get(commit.stream, fromSeq) === undefined) {
        throw new StoreError('STORE_UNKNOWN_GAP', `commit declares a gap of stream ${commit.stream} at seq ${fromSeq}, which was never opened`);
      }
      sql.declareGap.run(receivedAt, commit.stream, fromSeq);
    }
    for (const alert of commit.alerts ?? []) insertAlert(alert);
  }

  const markGapAlertedTransaction = db.transaction((stream: string, fromSeq: number, at: string, alert: CollectorAlert) => {
    if (sql.gapExists.get(stream, fromSeq) === undefined) {
      throw new StoreError('STORE_UNKNOWN_GAP', `no gap of stream ${stream} starts at seq ${fromSeq}`);
    }
    // Already alerted (by another node, or a retry): one alert per gap.
    if (sql.alertGap.run(at, stream, fromSeq).changes === 0) return;
    insertAlert(alert);
  });

  function* readRecords(where: string, params: Record<string, unknown>): Generator<StoredRecord, void, undefined> {
    // A cursor holds its connection until it ends; on the store's own connection that would make every
    // commit fail ("connection is busy") while an export streams. A reader of its own sees one snapshot
    // of the WAL and leaves the writer free.
    const reader = new Database(path, { readonly: true, fileMustExist: true });
    let read: { reader: Database.Database; rows: IterableIterator<RecordRow>; cut: boolean } | undefined;
    try {
      reader.pragma(`busy_timeout = ${settings.busyTimeoutMs}`);
      const statement = reader.prepare<[Record<string, unknown>], RecordRow>(
        `SELECT ${RECORD_COLUMNS} FROM records ${where} ORDER BY stream, seq`,
      );
      read = { reader, rows: statement.iterate(params), cut: false };
      reads.add(read);
      for (const row of read.rows) yield toStoredRecord(row);
      if (read.cut) throw new Error(`the store ${path} was closed while its records were being read`);
    } finally {
      if (read) {
        reads.delete(read);
        read.rows.return?.();
      }
      reader.close();
    }
  }

  return {
    createToken(token) {
      const createdAt = new Date().toISOString();
      refusing(`token ${token.id}`, () => sql.insertToken.run({ ...token, createdAt }));
      return { id: token.id, role: token.role, name: token.name, createdAt, revokedAt: null, lastUsedAt: null };
    },
    tokenBySecretHash(secretHash) {
      const row = sql.tokenBySecretHash.get(secretHash);
      return row && toToken(row);
    },
    listTokens() {
      return sql.listTokens.all().map(toToken);
    },
    revokeToken(id) {
      return sql.revokeToken.run(new Date().toISOString(), id).changes > 0;
    },
    touchToken(id, at) {
      sql.touchToken.run(at, id);
    },

    createAgent(agent) {
      const enrolledAt = new Date().toISOString();
      refusing(`agent ${agent.id}`, () => sql.insertAgent.run({ ...agent, enrolledAt }));
      return { id: agent.id, name: agent.name, hostId: agent.hostId, enrolledAt, revokedAt: null, lastSeenAt: null };
    },
    agentByKeyHash(keyHash) {
      const row = sql.agentByKeyHash.get(keyHash);
      return row && toAgent(row);
    },
    agent(id) {
      const row = sql.agentById.get(id);
      return row && toAgent(row);
    },
    listAgents() {
      return sql.listAgents.all().map(toAgent);
    },
    revokeAgent(id) {
      return sql.revokeAgent.run(new Date().toISOString(), id).changes > 0;
    },
    agentSeen(id, at) {
      sql.agentSeen.run(at, id);
    },

    stream(stream) {
      const row = sql.stream.get(stream);
      return row && toStreamState(row);
    },
    claimStream(stream, agentId) {
      refusing(`stream ${stream} for agent ${agentId}`, () => sql.claimStream.run(stream, agentId, GENESIS, new Date().toISOString()));
      const row = sql.stream.get(stream);
      if (row === undefined) throw new Error(`stream ${stream} is missing right after it was claimed`);
      return toStreamState(row);
    },
    streams() {
      return sql.streams.all().map(toStreamState);
    },
    commit(commit) {
      commitTransaction.immediate(commit, new Date().toISOString());
    },
    commitMany(commits) {
      if (commits.length > 0) commitManyTransaction.immediate(commits, new Date().toISOString());
    },
    gaps(stream) {
      return (stream === undefined ? sql.gaps.all() : sql.gapsOf.all(stream)).map(toGap);
    },
    markGapAlerted(stream, fromSeq, at, alert) {
      markGapAlertedTransaction.immediate(stream, fromSeq, at, alert);
    },
    addAlert(alert) {
      insertAlert(alert);
    },

    records(filter = {}) {
      // Checked here, not at the first next(): a generator's body runs only once it is read.
      if (!db.open) throw new TypeError(`the store ${path} is closed`);
      const { where, params } = recordWhere(filter);
      return readRecords(where, params);
    },
    collectorAlerts(filter = {}) {
      const conditions: string[] = [];
      const params: Record<string, unknown> = {};
      if (filter.since !== undefined) {
        conditions.push('time_ms >= @since');
        params['since'] = filterTime(filter.since, 'since');
      }
      if (filter.until !== undefined) {
        conditions.push('time_ms < @until');
        params['until'] = filterTime(filter.until, 'until');
      }
      if (filter.limit !== undefined) params['limit'] = filter.limit;
      const where = conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : '';
      const order = filter.newestFirst ? 'ORDER BY time_ms DESC, id DESC' : 'ORDER BY time_ms, id';
      const sqlText = `SELECT ${ALERT_COLUMNS} FROM collector_alerts ${where} ${order}${filter.limit === undefined ? '' : ' LIMIT @limit'}`;
      let statement = alertQueries.get(sqlText);
      if (statement === undefined) {
        statement = db.prepare(sqlText);
        alertQueries.set(sqlText, statement);
      }
      return statement.all(params).map(toCollectorAlert);
    },
    recordById(id, kind) {
      const row = kind === undefined ? sql.recordById.get(id) : sql.recordByIdOfKind.get(id, kind);
      return row && toStoredRecord(row);
    },
    recordsByIds(stream, ids) {
      if (ids.length === 0) return [];
      const params: Record<string, unknown> = { stream };
      const names = ids.map((id, index) => {
        params[`id${index}`] = id;
        return `@id${index}`;
      });
      return page(`SELECT ${RECORD_COLUMNS} FROM records WHERE stream = @stream AND id IN (${names.join(', ')}) ORDER BY seq`, params).map(toStoredRecord);
    },
    alertPage(query) {
      // Unqualified columns are the records' own: triage shares none of their names.
      const { conditions, params } = pageWhere(
        { kind: 'alert', since: query.since, until: query.until, hostId: query.host, sessionId: query.sessionId },
        query.before, query.limit,
      );
      if (query.levels !== undefined && query.levels.length > 0) {
        const names = query.levels.map((level, index) => {
          params[`level${index}`] = level;
          return `@level${index}`;
        });
        conditions.push(`json_extract(body, '$.rule.level') IN (${names.join(', ')})`);
      }
      if (query.rule !== undefined) {
        conditions.push("(json_extract(body, '$.rule.id') = @rule OR json_extract(body, '$.rule.title') = @rule)");
        params['rule'] = query.rule;
      }
      if (query.state !== undefined) {
        conditions.push(query.state === 'open' ? "(t.state IS NULL OR t.state = 'open')" : 't.state = @state');
        params['state'] = query.state;
      }
      const rows = page(
        `SELECT ${RECORD_COLUMNS}, t.state, t.assignee FROM records LEFT JOIN triage t ON t.alert_id = records.id
         WHERE ${conditions.join(' AND ')} ORDER BY time_ms DESC, stream DESC, seq DESC LIMIT @limit`,
        params,
      );
      return rows.map((row): AlertListing => ({ record: toStoredRecord(row), state: row.state ?? 'open', assignee: row.assignee ?? null }));
    },
    eventPage(query) {
      const { conditions, params } = pageWhere(
        { kind: 'event', since: query.since, until: query.until, hostId: query.host, sessionId: query.sessionId, category: query.category },
        query.before, query.limit,
      );
      const rows = page(`SELECT ${RECORD_COLUMNS} FROM records WHERE ${conditions.join(' AND ')} ORDER BY time_ms DESC, stream DESC, seq DESC LIMIT @limit`, params);
      return rows.map(toStoredRecord);
    },
    triage(entry) {
      triageTransaction.immediate(entry);
    },
    triageOf(alertId) {
      const current = sql.triageState.get(alertId);
      return {
        state: current?.state ?? 'open',
        assignee: current?.assignee ?? null,
        history: sql.triageHistory.all(alertId).map((row) => ({
          alertId: row.alert_id, at: row.at, by: row.by, action: row.action, state: row.state, assignee: row.assignee, comment: row.comment,
        })),
      };
    },
    logAccess(entry) {
      sql.insertAccess.run(entry);
    },
    accessLog(query) {
      return sql.accessLog.all(query.beforeId ?? Number.MAX_SAFE_INTEGER, query.limit).map((row): AccessEntry => ({
        id: row.id, at: row.at, tokenId: row.token_id, by: row.by, action: row.action, target: row.target, status: row.status,
      }));
    },
    counts() {
      const row = sql.counts.get();
      if (row === undefined) throw new Error('count query returned no row');
      return row;
    },

    close() {
      for (const read of reads) {
        read.cut = true;
        read.rows.return?.();
        read.reader.close();
      }
      reads.clear();
      if (db.open) db.close();
    },
  };
}

/** Opens the file, checks it is ours (or empty) and not newer than this code, then sets it up. */
function openDatabase(path: string, settings: Required<SqliteStoreOptions>): Database.Database {
  let db: Database.Database;
  try {
    db = new Database(path);
  } catch (error) {
    throw new StoreError('STORE_OPEN_FAILED', `cannot open collector database ${path}: ${messageOf(error)}`, { cause: error });
  }
  try {
    // Read before any write, so a file we must refuse is left exactly as it was.
    let version: number;
    let tables: string[];
    try {
      version = db.pragma('user_version', { simple: true }) as number;
      tables = db.prepare<[], string>("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").pluck().all();
    } catch (error) {
      if (isSqliteCode(error, 'SQLITE_NOTADB')) {
        throw new StoreError('STORE_NOT_A_DATABASE', `${path} is not an SQLite database (SQLite: ${messageOf(error)})`, { cause: error });
      }
      throw error;
    }
    if (version > SCHEMA_VERSION) {
      throw new StoreError(
        'STORE_TOO_NEW',
        `${path} has schema version ${version}, newer than this collector's (${SCHEMA_VERSION}); run a newer omwatch-collector`,
      );
    }
    if (version === 0 && tables.length > 0) {
      throw new StoreError(
        'STORE_FOREIGN_DATABASE',
        `${path} is an SQLite database but not a collector's (no schema version; tables: ${tables.join(', ')})`,
      );
    }

    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal') throw new StoreError('STORE_OPEN_FAILED', `${path}: cannot switch to WAL mode (journal mode is ${String(mode)})`);
    db.pragma(`synchronous = ${settings.synchronous}`);
    db.pragma(`busy_timeout = ${settings.busyTimeoutMs}`);
    db.pragma('foreign_keys = ON');

    if (version === 0) {
      db.transaction(() => {
        db.exec(SCHEMA);
        db.pragma(`user_version = ${SCHEMA_VERSION}`);
      }).immediate();
    } else if (version < SCHEMA_VERSION) {
      db.transaction(() => {
        for (const [to, step] of MIGRATIONS) if (to > version) db.exec(step);
        db.pragma(`user_version = ${SCHEMA_VERSION}`);
      }).immediate();
    }
    return db;
  } catch (error) {
    db.close();
    if (error instanceof StoreError) throw error;
    throw new StoreError('STORE_OPEN_FAILED', `cannot open collector database ${path}: ${messageOf(error)}`, { cause: error });
  }
}

/** The WHERE clause of a records() filter; `agentId` also narrows by the stream key, which is indexed. */
function recordWhere(filter: RecordFilter): { where: string; conditions: string[]; params: Record<string, unknown> } {
  const conditions: string[] = [];
  const params: Record<string, unknown> = {};
  if (filter.stream !== undefined) {
    conditions.push('stream = @stream');
    params['stream'] = filter.stream;
  }
  if (filter.agentId !== undefined) {
    conditions.push('agent_id = @agentId AND stream IN (SELECT stream FROM streams WHERE agent_id = @agentId)');
    params['agentId'] = filter.agentId;
  }
  if (filter.hostId !== undefined) {
    conditions.push('host_id = @hostId');
    params['hostId'] = filter.hostId;
  }
  if (filter.kind !== undefined) {
    conditions.push('kind = @kind');
    params['kind'] = filter.kind;
  }
  if (filter.category !== undefined) {
    conditions.push('category = @category');
    params['category'] = filter.category;
  }
  if (filter.sessionId !== undefined) {
    conditions.push('session_id = @sessionId');
    params['sessionId'] = filter.sessionId;
  }
  if (filter.afterSeq !== undefined) {
    conditions.push('seq > @afterSeq');
    params['afterSeq'] = filter.afterSeq;
  }
  if (filter.since !== undefined) {
    conditions.push('time_ms >= @since');
    params['since'] = filterTime(filter.since, 'since');
  }
  if (filter.until !== undefined) {
    conditions.push('time_ms < @until');
    params['until'] = filterTime(filter.until, 'until');
  }
  return { where: conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : '', conditions, params };
}

/** A newest-first page's conditions: the records() filter's, and the cursor (the previous page's last row). */
function pageWhere(filter: RecordFilter, before: PageCursor | undefined, limit: number): { conditions: string[]; params: Record<string, unknown> } {
  const { conditions, params } = recordWhere(filter);
  params['limit'] = limit;
  if (before !== undefined) {
    conditions.push('(time_ms, stream, seq) < (@beforeTime, @beforeStream, @beforeSeq)');
    params['beforeTime'] = before.timeMs;
    params['beforeStream'] = before.stream;
    params['beforeSeq'] = before.seq;
  }
  return { conditions, params };
}

function recordParams(record: IngestRecord): Record<string, unknown> {
  return {
    seq: record.seq,
    kind: record.kind,
    id: record.id,
    time: record.time,
    // NaN binds as NULL and fails NOT NULL: an unreadable time fails the batch rather than hiding it.
    timeMs: Date.parse(record.time),
    hostId: record.hostId,
    category: record.category,
    sessionId: record.sessionId,
    hash: record.hash,
    prev: record.prev,
    body: record.body,
  };
}

function filterTime(iso: string, name: 'since' | 'until'): number {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) throw new StoreError('STORE_BAD_FILTER', `filter ${name}: expected an ISO time, got ${JSON.stringify(iso)}`);
  return ms;
}

function toToken(row: TokenRow): Token {
  return {
    id: row.id,
    role: row.role,
    name: row.name,
    createdAt: row.created_at,
    revokedAt: row.revoked_at,
    lastUsedAt: row.last_used_at,
  };
}

function toAgent(row: AgentRow): Agent {
  return {
    id: row.id,
    name: row.name,
    hostId: row.host_id,
    enrolledAt: row.enrolled_at,
    revokedAt: row.revoked_at,
    lastSeenAt: row.last_seen_at,
  };
}

function toStreamState(row: StreamRow): StreamState {
  return { stream: row.stream, agentId: row.agent_id, ackedSeq: row.acked_seq, lastHash: row.last_hash };
}

function toStoredRecord(row: RecordRow): StoredRecord {
  return {
    stream: row.stream,
    seq: row.seq,
    agentId: row.agent_id,
    kind: row.kind,
    id: row.id,
    time: row.time,
    hostId: row.host_id,
    category: row.category,
    sessionId: row.session_id,
    hash: row.hash,
    prev: row.prev,
    body: row.body,
    receivedAt: row.received_at,
  };
}

function toGap(row: GapRow): Gap {
  return {
    stream: row.stream,
    fromSeq: row.from_seq,
    toSeq: row.to_seq,
    beforeHash: row.before_hash,
    afterPrev: row.after_prev,
    openedAt: row.opened_at,
    declaredAt: row.declared_at,
    alertedAt: row.alerted_at,
  };
}

function toCollectorAlert(row: AlertRow): CollectorAlert {
  return {
    id: row.id,
    time: row.time,
    type: row.type,
    agentId: row.agent_id,
    stream: row.stream,
    summary: row.summary,
    details: row.details,
  };
}

/** Runs a write; a constraint it breaks (a duplicate, an unknown owner) becomes an error naming `what`. */
function refusing(what: string, write: () => unknown): void {
  try {
    write();
  } catch (error) {
    if (error instanceof Database.SqliteError && error.code.startsWith('SQLITE_CONSTRAINT')) {
      throw new StoreError('STORE_CONSTRAINT', `${what} refused: ${error.message}`, { cause: error });
    }
    throw error;
  }
}

function isSqliteCode(error: unknown, code: string): boolean {
  return error instanceof Database.SqliteError && error.code === code;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
