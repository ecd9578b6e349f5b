// The collector's store: one contract, an SQLite implementation (embedded default, `sqlite/`) and, to
// come, a PostgreSQL one (`postgres/`), both run against the same contract tests (`contract.ts`).
// Secrets never reach the store: tokens and agent keys arrive as SHA-256 hashes.

export type Role = 'enroll' | 'admin' | 'analyst' | 'auditor';
export const ROLES: readonly Role[] = ['enroll', 'admin', 'analyst', 'auditor'];

export interface Token {
  id: string;
  role: Role;
  name: string;
  createdAt: string;
  revokedAt: string | null;
  lastUsedAt: string | null;
}

export interface Agent {
  id: string;
  name: string;
  /** The host id the agent reported when enrolling (hashed machine id), if any. */
  hostId: string | null;
  enrolledAt: string;
  revokedAt: string | null;
  lastSeenAt: string | null;
}

/** How far a stream is stored: its owner, the acked high-water mark, and the hash at that mark. */
export interface StreamState {
  stream: string;
  agentId: string;
  ackedSeq: number;
  lastHash: string;
}

/** One record (event or alert) as ingest hands it to the store, checked and parsed. */
export interface IngestRecord {
  seq: number;
  kind: 'event' | 'alert';
  id: string;
  time: string;
  hostId: string | null;
  /** Events: their category; alerts: null. */
  category: string | null;
  sessionId: string | null;
  hash: string;
  prev: string;
  /** The record as JSON, as received (parsed and re-serialized), `hash` and `prev` included. */
  body: string;
}

export interface StoredRecord extends IngestRecord {
  stream: string;
  agentId: string;
  receivedAt: string;
}

/** Seqs missing from a stream, as ingest saw them: the hash before the gap and the `prev` after it. */
export interface Gap {
  stream: string;
  fromSeq: number;
  toSeq: number;
  beforeHash: string;
  afterPrev: string;
  openedAt: string;
  /** Set when a buffer_dropped declaration covering it, with matching hashes, arrived. */
  declaredAt: string | null;
  /** Set when a chain_broken alert was raised for it. */
  alertedAt: string | null;
}

/** An alert the collector raises itself: chain_broken, agent_offline. */
export interface CollectorAlert {
  id: string;
  time: string;
  type: 'chain_broken' | 'agent_offline';
  agentId: string | null;
  stream: string | null;
  summary: string;
  /** Details as JSON. */
  details: string;
}

export interface RecordFilter {
  stream?: string;
  agentId?: string;
  hostId?: string;
  kind?: 'event' | 'alert';
  /** Events of this category only. */
  category?: string;
  /** Records of this session only (events' `SessionId`, alerts' `sessionId`). */
  sessionId?: string;
  /** Records after this seq only (with `stream`: the tail of a stream). */
  afterSeq?: number;
  /** ISO times, inclusive since, exclusive until, on the record's own `time` (compared as instants, not as text). */
  since?: string;
  until?: string;
}

/**
 * What one committed batch changes, all in one transaction: if any part fails (an unclaimed stream, a
 * record the schema refuses, an unknown gap) nothing of it is stored. The store stamps `receivedAt`
 * and `declaredAt` with its own clock at commit.
 */
export interface Commit {
  stream: string;
  /** Records to insert; a (stream, seq) already stored is skipped, never duplicated or replaced. */
  records: IngestRecord[];
  /**
   * The stream's new state: the acked high-water mark is committed with the records. It only moves
   * forward: a state below the stored mark (a batch committed again) leaves the mark as it is.
   */
  state: { ackedSeq: number; lastHash: string };
  /** Gaps to open; one already open at the same fromSeq is kept as it is. */
  gapsOpened?: Array<Omit<Gap, 'stream' | 'declaredAt' | 'alertedAt'>>;
  /** Gaps (by fromSeq) a declaration closed; each must be open already or opened by this commit. */
  gapsDeclared?: number[];
  /** Collector alerts to add; an alert id already stored is skipped. */
  alerts?: CollectorAlert[];
}

/** Where an analyst has taken an alert: open until acknowledged, assigned or closed; reopened as needed. */
export type TriageState = 'open' | 'acknowledged' | 'closed';
export const TRIAGE_ACTIONS = ['acknowledge', 'assign', 'close', 'reopen'] as const;
export type TriageAction = (typeof TRIAGE_ACTIONS)[number];

/** One step of an alert's triage, as kept forever: who did what, when, and what they wrote. */
export interface TriageEntry {
  alertId: string;
  at: string;
  /** The token's role and name, as `analyst:soc-alice`. */
  by: string;
  action: TriageAction;
  /** The state and assignee after this step. */
  state: TriageState;
  assignee: string | null;
  comment: string | null;
}

/** A position in a newest-first listing: the last row of the previous page. */
export interface PageCursor {
  timeMs: number;
  stream: string;
  seq: number;
}

export interface AlertQuery {
  since?: string;
  until?: string;
  /** The host's id. */
  host?: string;
  levels?: string[];
  /** The rule's id or exact title. */
  rule?: string;
  sessionId?: string;
  state?: TriageState;
  /** Rows older than this one (the previous page's last). */
  before?: PageCursor;
  limit: number;
}

export interface AlertListing {
  record: StoredRecord;
  state: TriageState;
  assignee: string | null;
}

export interface EventQuery {
  since?: string;
  until?: string;
  host?: string;
  category?: string;
  sessionId?: string;
  before?: PageCursor;
  limit: number;
}

/** One line of the access log: a read of evidence (by an auditor) or a change, by whom. */
export interface AccessEntry {
  id: number;
  at: string;
  tokenId: string;
  /** `role:name` of the token. */
  by: string;
  action: string;
  target: string;
  status: number;
}

export interface Store {
  // Tokens (admin, analyst, auditor, enroll), by the SHA-256 of the secret.
  createToken(token: { id: string; role: Role; name: string; secretHash: string }): Token;
  tokenBySecretHash(secretHash: string): Token | undefined;
  listTokens(): Token[];
  /** True if it was active. */
  revokeToken(id: string): boolean;
  touchToken(id: string, at: string): void;

  // Agents, by the SHA-256 of their key.
  createAgent(agent: { id: string; name: string; hostId: string | null; keyHash: string; enrolledWith: string }): Agent;
  agentByKeyHash(keyHash: string): Agent | undefined;
  agent(id: string): Agent | undefined;
  listAgents(): Agent[];
  revokeAgent(id: string): boolean;
  agentSeen(id: string, at: string): void;

  // Streams and ingest.
  stream(stream: string): StreamState | undefined;
  /** The stream's state, created for this agent if new (ackedSeq 0, lastHash GENESIS); an existing one keeps its owner. */
  claimStream(stream: string, agentId: string): StreamState;
  /** All streams, by stream id. */
  streams(): StreamState[];
  /** Returns once the commit is durable: only then may ingest ack it. */
  commit(commit: Commit): void;
  /**
   * Several commits (of any streams) in one transaction, all or none: one durable write for the batches
   * of many agents (group commit). A stream may appear more than once, in order.
   */
  commitMany(commits: readonly Commit[]): void;
  /** Gaps, by stream then fromSeq. */
  gaps(stream?: string): Gap[];
  /** Sets the gap's alertedAt and adds the alert, together; a gap already alerted is left as is (no second alert). Throws if no such gap. */
  markGapAlerted(stream: string, fromSeq: number, at: string, alert: CollectorAlert): void;
  addAlert(alert: CollectorAlert): void;

  // Reads, for export, verify and the API: in (stream, seq) order.
  /**
   * Streams the records matching every given filter, read from one snapshot; commits may run while the
   * iterator is open. Run it to the end or call `return()` (a `for…of` with `break` does) to free it.
   */
  records(filter?: RecordFilter): IterableIterator<StoredRecord>;
  /** Ordered by time (newest first if asked), at most `limit`. */
  collectorAlerts(filter?: { since?: string; until?: string; newestFirst?: boolean; limit?: number }): CollectorAlert[];
  /** The first stored record with this id (ids are the agents' UUIDv7; the first stored wins). */
  recordById(id: string, kind?: 'event' | 'alert'): StoredRecord | undefined;
  /** The records of one stream with these ids, in seq order. */
  recordsByIds(stream: string, ids: readonly string[]): StoredRecord[];
  /** Alerts newest first, `limit` at most, with their triage state. */
  alertPage(query: AlertQuery): AlertListing[];
  /** Events newest first, `limit` at most. */
  eventPage(query: EventQuery): StoredRecord[];

  // Triage: the current state of an alert and every step that led there.
  triage(entry: TriageEntry): void;
  triageOf(alertId: string): { state: TriageState; assignee: string | null; history: TriageEntry[] };

  // Access log: every read of evidence by an auditor, and every change, kept in order.
  logAccess(entry: Omit<AccessEntry, 'id'>): void;
  /** Newest first; `beforeId` pages back. */
  accessLog(query: { beforeId?: number; limit: number }): AccessEntry[];

  /** `records` counts events and alerts; `alerts` the records that are alerts (not collector alerts). */
  counts(): { records: number; alerts: number; streams: number; agents: number };

  close(): void;
}
