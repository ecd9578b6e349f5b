// The wire protocol of design.md §4: JSON text frames over one WebSocket per agent. The agent names its
// stream in the upgrade request (header STREAM_HEADER) with its key as bearer; the collector answers
// `welcome` with what it already holds, then acks batches cumulatively once they are committed.
import { z } from 'zod';
import { AlertSchema } from './alert.ts';
import { EventSchema } from './envelope.ts';

/** The WebSocket path of ingest, under the collector's base URL. */
export const INGEST_PATH = '/api/v1/ingest';
/** The WebSocket path of the live alert feed (analyst tokens). */
export const LIVE_PATH = '/api/v1/live';
export const ENROLL_PATH = '/api/v1/enroll';
/** The WebSocket path of one live recorded-shell session's output (analyst tokens): `?id=SESSION`. */
export const SESSION_LIVE_PATH = '/api/v1/sessions/live';
/** `POST {SESSIONS_PATH}/:id/kill` ends a live recorded-shell session (analyst tokens). */
export const SESSIONS_PATH = '/api/v1/sessions';
/** Request header naming the outbox stream an agent is about to send. */
export const STREAM_HEADER = 'x-omwatch-stream';

/** A frame larger than this closes the connection (1009). */
export const MAX_FRAME_BYTES = 4 * 1024 * 1024;
export const MAX_BATCH_RECORDS = 1_000;

/** Close codes the collector uses, each with a reason text naming what was wrong. */
export const CloseCode = {
  /** The frame is not JSON, or not one of the frames below, or a record fails its schema. */
  BAD_FRAME: 4400,
  /** The stream belongs to another agent. */
  FOREIGN_STREAM: 4403,
  /** Sequence numbers out of order inside a batch, or a batch for a stream not announced. */
  BAD_SEQUENCE: 4409,
  /** More records per second than the agent's rate allows. */
  RATE_LIMITED: 4429,
  /** The agent's key was revoked while connected. */
  REVOKED: 4401,
} as const;

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);
export const StreamIdSchema = z.string().regex(/^[A-Za-z0-9_-]{8,64}$/);

const outboxFields = {
  stream: StreamIdSchema,
  seq: z.number().int().positive(),
  hash: sha256Hex,
  prev: sha256Hex,
};

/** An event as it leaves the outbox: the envelope with its stream, sequence number and chain. */
export const EventRecordSchema = EventSchema.options.map((option) => option.extend(outboxFields));
export const WireEventSchema = z.discriminatedUnion('category', EventRecordSchema as unknown as [typeof EventRecordSchema[number], ...typeof EventRecordSchema]);
/** An alert as it leaves the outbox: travels in the same stream, with priority over plain events. */
export const WireAlertSchema = AlertSchema.extend(outboxFields);

export type WireEvent = z.infer<typeof WireEventSchema>;
export type WireAlert = z.infer<typeof WireAlertSchema>;
/** One record of a stream: an event, or an alert (which has `rule`, where an event has `category`). */
export type WireRecord = WireEvent | WireAlert;

export function isAlert(record: WireRecord): record is WireAlert {
  return 'rule' in record;
}

export const BatchFrameSchema = z.strictObject({
  type: z.literal('batch'),
  stream: StreamIdSchema,
  // Records are checked one by one (parseRecord), so one bad record is named by its index.
  events: z.array(z.unknown()).min(1).max(MAX_BATCH_RECORDS),
});

export const AckFrameSchema = z.strictObject({ type: z.literal('ack'), stream: StreamIdSchema, seq: z.number().int().nonnegative() });
export const WelcomeFrameSchema = z.strictObject({ type: z.literal('welcome'), stream: StreamIdSchema, ackedSeq: z.number().int().nonnegative() });
/** A live alert, as the collector pushes it to `tail` and dashboards. */
export const LiveAlertFrameSchema = z.strictObject({ type: z.literal('alert'), agentId: z.string(), alert: z.record(z.string(), z.unknown()) });

const SessionIdSchema = z.string().regex(/^[A-Za-z0-9_-]{8,64}$/);
/** A live session's output as the agent relays it (not stored: the recording travels in the stream). */
export const MAX_PTY_FRAME_CHARS = 256 * 1024;
export const PtyFrameSchema = z.strictObject({
  type: z.literal('pty'), sessionId: SessionIdSchema,
  /** Seconds since the session started, as in the recording. */
  t: z.number().nonnegative(),
  data: z.string().max(MAX_PTY_FRAME_CHARS),
});
/** The agent's live recorded-shell sessions, sent on connect and on every change: where kills go. */
export const SessionsFrameSchema = z.strictObject({
  type: z.literal('sessions'),
  live: z.array(z.strictObject({ sessionId: SessionIdSchema, user: z.string().max(256), startedAt: z.iso.datetime() })).max(256),
});
/** collector → agent: end this session now; `by` names who asked (recorded in the session's end). */
export const SessionKillFrameSchema = z.strictObject({ type: z.literal('session.kill'), sessionId: SessionIdSchema, by: z.string().min(1).max(256) });
/** collector → agent: someone watches this session live (or no longer): its output is relayed only while watched. */
export const SessionWatchFrameSchema = z.strictObject({ type: z.literal('session.watch'), sessionId: SessionIdSchema, watched: z.boolean() });
/** collector → analyst on SESSION_LIVE_PATH: the session ended (or was not live), or its agent is unreachable for now. */
export const SessionStateFrameSchema = z.strictObject({ type: z.enum(['session.end', 'session.offline']), sessionId: SessionIdSchema });

/** A sensor's state as the agent reports it in `status` (agent/sensors/types.ts SensorState). */
export const SensorStatusSchema = z.strictObject({ name: z.string().min(1).max(64), state: z.enum(['ok', 'degraded', 'unavailable']) });
/**
 * agent → collector: what the agent runs and how far behind its delivery is, sent after every welcome
 * and then periodically while connected. Not stored in the stream: the latest one describes the agent.
 */
export const StatusFrameSchema = z.strictObject({
  type: z.literal('status'),
  /** The agent's version (AGENT_VERSION). */
  version: z.string().min(1).max(64),
  /** Which rule set the agent judges by: a hash of its loaded rule files, or `none` before any is loaded. */
  rulesVersion: z.string().min(1).max(128),
  /** Outbox records written and not yet acked by the collector, and their bytes. */
  outboxDepth: z.number().int().nonnegative(),
  outboxBytes: z.number().int().nonnegative(),
  sensors: z.array(SensorStatusSchema).max(64).optional(),
});

export type PtyFrame = z.infer<typeof PtyFrameSchema>;
export type SessionsFrame = z.infer<typeof SessionsFrameSchema>;
export type SessionKillFrame = z.infer<typeof SessionKillFrameSchema>;
export type SessionWatchFrame = z.infer<typeof SessionWatchFrameSchema>;
export type SessionStateFrame = z.infer<typeof SessionStateFrameSchema>;
export type StatusFrame = z.infer<typeof StatusFrameSchema>;
/** What the collector may ask of an agent about its recorded shells. */
export type SessionCommandFrame = SessionKillFrame | SessionWatchFrame;
export { SessionIdSchema };

export type BatchFrame = z.infer<typeof BatchFrameSchema>;
export type AckFrame = z.infer<typeof AckFrameSchema>;
export type WelcomeFrame = z.infer<typeof WelcomeFrameSchema>;
export type LiveAlertFrame = z.infer<typeof LiveAlertFrameSchema>;

/** A record of a batch, checked against the event or the alert schema; the error names the first problem. */
export function parseRecord(value: unknown): { ok: true; record: WireRecord } | { ok: false; error: string } {
  const isObject = typeof value === 'object' && value !== null && !Array.isArray(value);
  const schema = isObject && 'rule' in value ? WireAlertSchema : WireEventSchema;
  const result = schema.safeParse(value);
  if (result.success) return { ok: true, record: result.data as WireRecord };
  const issue = result.error.issues[0];
  return { ok: false, error: issue ? `${issue.path.join('.') || '(record)'}: ${issue.message}` : 'invalid record' };
}

/**
 * A collector is named by its base URL everywhere (`https://host:port`, or `http://` to loopback); the
 * WebSocket address of a path under it follows from it.
 */
export function webSocketUrl(base: string, path: string): URL {
  const url = new URL(path.replace(/^\//, ''), base.endsWith('/') ? base : `${base}/`);
  if (url.protocol === 'https:') url.protocol = 'wss:';
  else if (url.protocol === 'http:') url.protocol = 'ws:';
  else throw new Error(`collector URL must be https:// (or http:// to loopback), got ${base}`);
  return url;
}

/** Whether a host name or address is this machine's loopback, where plain http/ws is allowed. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '');
  return bare === 'localhost' || bare === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(bare);
}
