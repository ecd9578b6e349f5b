// The uplink: sends the outbox's unacked rows to the collector over one WebSocket, several batches in
// flight, and marks rows delivered only on the collector's cumulative ack (design.md §4–§5).
import { EventEmitter } from 'node:events';
import { WebSocket } from 'ws';
import {
  AckFrameSchema, INGEST_PATH, isLoopbackHost, MAX_FRAME_BYTES, SessionKillFrameSchema, SessionWatchFrameSchema, StatusFrameSchema, STREAM_HEADER, webSocketUrl,
  WelcomeFrameSchema, type PtyFrame, type SessionsFrame, type StatusFrame,
} from '../../collector/protocol/index.ts';
import { UplinkConfigError } from '../errors.ts';
import type { Logger } from '../log/index.ts';
import type { Outbox } from '../outbox/types.ts';

export interface UplinkOptions {
  /** The collector's base URL: `https://host:port`, or `http://` to loopback. */
  collectorUrl: string;
  key: string;
  /** PEM of the CA that signed the collector's certificate; the only one trusted for it. */
  caPem?: string;
  outbox: Outbox;
  logger: Logger;
  batchRecords?: number;
  batchBytes?: number;
  maxInFlightBatches?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** The collector is pinged this often; no pong by the next ping means a dead peer. */
  pingIntervalMs?: number;
  /** What the agent says of itself, asked each time a `status` frame is sent; without it none is. */
  status?: () => Omit<StatusFrame, 'type'>;
  /** A `status` frame goes after every welcome, and then this often while connected. */
  statusIntervalMs?: number;
}

export { UplinkConfigError };

/** Live session output is best effort: past this much unsent data it is dropped (the recording has it all). */
const LIVE_MAX_BUFFERED_BYTES = 1024 * 1024;

export interface UplinkStats {
  connected: boolean;
  connects: number;
  batchesSent: number;
  ackedSeq: number;
  lastError: string | undefined;
  /** Live session output frames not sent because the connection was down or behind. */
  liveDropped: number;
  /** Status frames not sent because what the provider gave failed the frame's schema (each is logged). */
  statusInvalid: number;
}

/**
 * Emits `welcome` (ackedSeq), `ack` (seq), `connected`, `disconnected` (reason), `behind` (the
 * collector's seq) when the collector holds more of the stream than the outbox: it then stops; and
 * `command` (a SessionCommandFrame) when the collector asks to end or to watch a recorded shell session.
 */
export class Uplink extends EventEmitter {
  readonly stats: UplinkStats = { connected: false, connects: 0, batchesSent: 0, ackedSeq: 0, lastError: undefined, liveDropped: 0, statusInvalid: 0 };
  readonly #options: Required<Omit<UplinkOptions, 'caPem' | 'status'>> & Pick<UplinkOptions, 'caPem' | 'status'>;
  readonly #url: URL;
  #ws: WebSocket | undefined;
  #ready = false;
  #sentSeq = 0;
  #inFlight: number[] = [];
  #attempt = 0;
  #retry: NodeJS.Timeout | undefined;
  #pinger: NodeJS.Timeout | undefined;
  #statusTimer: NodeJS.Timeout | undefined;
  #stopped = false;
  #sessions: SessionsFrame['live'] = [];

  constructor(options: UplinkOptions) {
    super();
    this.#options = {
      batchRecords: 500, batchBytes: 1024 * 1024, maxInFlightBatches: 8, initialBackoffMs: 500, maxBackoffMs: 30_000, pingIntervalMs: 15_000,
      statusIntervalMs: 30_000, ...options,
    };
    this.#url = webSocketUrl(options.collectorUrl, INGEST_PATH);
    if (this.#url.protocol === 'ws:' && !isLoopbackHost(this.#url.hostname)) {
      throw new UplinkConfigError(`collector ${options.collectorUrl}: plain http:// is only allowed to loopback; use https://`);
    }
    if (this.#options.batchBytes > MAX_FRAME_BYTES / 2) throw new UplinkConfigError(`batchBytes must stay under ${MAX_FRAME_BYTES / 2}`);
    if (!(this.#options.statusIntervalMs > 0)) throw new UplinkConfigError(`statusIntervalMs: expected a positive number of ms, got ${this.#options.statusIntervalMs}`);
    options.outbox.onFlush(() => this.#pump());
  }

  start(): void {
    this.#connect();
  }

  /** The live recorded-shell sessions, told to the collector now and after every reconnect. */
  setSessions(live: SessionsFrame['live']): void {
    this.#sessions = live;
    this.#sendSessions();
  }

  /** Relays a live session's output; dropped (and counted) while the connection is down or behind. */
  sendLive(frame: PtyFrame): void {
    const ws = this.#ws;
    if (!ws || !this.#ready || ws.readyState !== WebSocket.OPEN || ws.bufferedAmount > LIVE_MAX_BUFFERED_BYTES) {
      this.stats.liveDropped++;
      return;
    }
    ws.send(JSON.stringify(frame));
  }

  /** Tells the collector the agent's status now (it is also told after every welcome and every statusIntervalMs). */
  sendStatus(): void {
    const ws = this.#ws;
    const { status, logger } = this.#options;
    if (!status || !ws || !this.#ready || ws.readyState !== WebSocket.OPEN) return;
    // Checked here: a frame the collector refuses would close the connection, and delivery with it, at every try.
    const frame = StatusFrameSchema.safeParse({ type: 'status', ...status() });
    if (!frame.success) {
      this.stats.statusInvalid++;
      const issue = frame.error.issues[0];
      logger.error({ field: issue?.path.join('.'), problem: issue?.message }, 'status not sent: it does not fit the status frame');
      return;
    }
    ws.send(JSON.stringify(frame.data));
  }

  #sendSessions(): void {
    const ws = this.#ws;
    if (!ws || !this.#ready || ws.readyState !== WebSocket.OPEN) return;
    const frame: SessionsFrame = { type: 'sessions', live: this.#sessions };
    ws.send(JSON.stringify(frame));
  }

  /** Stops reconnecting; waits up to `drainMs` for in-flight batches to be acked, then closes. */
  async stop(drainMs = 2_000): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#retry);
    clearInterval(this.#pinger);
    clearInterval(this.#statusTimer);
    const ws = this.#ws;
    if (!ws) return;
    if (this.#inFlight.length > 0 && ws.readyState === WebSocket.OPEN) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, drainMs);
        const check = () => {
          if (this.#inFlight.length > 0) return;
          clearTimeout(timer);
          this.off('ack', check);
          resolve();
        };
        this.on('ack', check);
      });
    }
    await new Promise<void>((resolve) => {
      if (ws.readyState === WebSocket.CLOSED) return resolve();
      ws.once('close', () => resolve());
      ws.close(1000, 'agent stopping');
      setTimeout(() => {
        ws.terminate();
        resolve();
      }, 1_000).unref();
    });
  }

  #connect(): void {
    if (this.#stopped) return;
    const { key, caPem, outbox } = this.#options;
    const ws = new WebSocket(this.#url, {
      headers: { authorization: `Bearer ${key}`, [STREAM_HEADER]: outbox.stream },
      maxPayload: MAX_FRAME_BYTES,
      handshakeTimeout: 10_000,
      // Masking (RFC 6455 §10.3) keeps a browser's untrusted scripts from steering what a proxy sees;
      // the agent runs none, and speaks TLS off loopback. An all-zero mask lets ws skip XOR-ing every
      // byte it sends (recordings are most of them).
      generateMask: (mask: Buffer) => void mask.fill(0),
      // Pinned: with `ca` given, only that CA is trusted, not the system's.
      ...(caPem ? { ca: caPem } : {}),
    });
    this.#ws = ws;
    this.#ready = false;
    ws.on('unexpected-response', (_request, response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString().slice(0, 512)));
      response.on('end', () => {
        this.stats.lastError = `collector refused the connection: HTTP ${response.statusCode} ${body.trim()}`;
        this.#options.logger.error({ status: response.statusCode, reason: body.trim() }, 'collector refused the connection');
        ws.terminate();
      });
    });
    ws.on('open', () => {
      this.stats.connects++;
      this.#alive = true;
      clearInterval(this.#pinger);
      this.#pinger = setInterval(() => this.#ping(ws), this.#options.pingIntervalMs);
      this.#pinger.unref();
    });
    ws.on('pong', () => (this.#alive = true));
    ws.on('message', (data) => this.#message(ws, data.toString()));
    ws.on('error', (error) => {
      this.stats.lastError = error.message;
      this.#options.logger.warn({ err: error.message, url: this.#url.href }, 'uplink error');
    });
    ws.on('close', (code, reason) => {
      clearInterval(this.#pinger);
      clearInterval(this.#statusTimer);
      if (this.#ws !== ws) return;
      this.#ws = undefined;
      this.#ready = false;
      this.#inFlight = [];
      if (this.stats.connected) this.#options.logger.info({ code, reason: reason.toString() }, 'uplink disconnected');
      this.stats.connected = false;
      this.emit('disconnected', `${code} ${reason.toString()}`);
      this.#scheduleRetry();
    });
  }

  #alive = true;

  #ping(ws: WebSocket): void {
    if (!this.#alive) {
      this.#options.logger.warn('collector did not answer a ping: dropping the connection');
      ws.terminate();
      return;
    }
    this.#alive = false;
    ws.ping();
  }

  /** Exponential backoff with full jitter, so a fleet does not reconnect in step after an outage. */
  #scheduleRetry(): void {
    if (this.#stopped) return;
    const { initialBackoffMs, maxBackoffMs } = this.#options;
    const ceiling = Math.min(maxBackoffMs, initialBackoffMs * 2 ** this.#attempt);
    this.#attempt = Math.min(this.#attempt + 1, 30);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.#retry = setTimeout(() => this.#connect(), delay);
    this.#retry.unref();
  }

  #message(ws: WebSocket, text: string): void {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      this.#options.logger.warn('collector sent a frame that is not JSON');
      return;
    }
    const welcome = WelcomeFrameSchema.safeParse(value);
    if (welcome.success && welcome.data.ackedSeq > this.#options.outbox.stats().lastSeq) {
      // The collector holds more of this stream than the outbox ever wrote: a restored or reverted file.
      // Nothing is sent (it would be taken for records already held); the owner starts a new stream.
      this.stats.lastError = `the collector holds seq ${welcome.data.ackedSeq} of stream ${welcome.data.stream}, past this outbox's last seq`;
      this.#options.logger.error({ collectorSeq: welcome.data.ackedSeq, stream: welcome.data.stream }, 'the collector is ahead of this outbox');
      this.#stopped = true;
      ws.close(1000, 'outbox behind the collector');
      this.emit('behind', welcome.data.ackedSeq);
      return;
    }
    if (welcome.success) {
      // The collector holds everything up to ackedSeq: resume after it.
      this.#options.outbox.ack(welcome.data.ackedSeq);
      this.stats.ackedSeq = welcome.data.ackedSeq;
      this.#sentSeq = welcome.data.ackedSeq;
      this.#inFlight = [];
      this.#ready = true;
      this.stats.connected = true;
      this.#options.logger.info({ ackedSeq: welcome.data.ackedSeq, stream: welcome.data.stream }, 'uplink connected');
      this.emit('welcome', welcome.data.ackedSeq);
      this.emit('connected');
      this.#sendSessions();
      this.sendStatus();
      clearInterval(this.#statusTimer);
      if (this.#options.status) {
        this.#statusTimer = setInterval(() => this.sendStatus(), this.#options.statusIntervalMs);
        this.#statusTimer.unref();
      }
      this.#pump();
      return;
    }
    const command = SessionKillFrameSchema.safeParse(value);
    const watch = command.success ? undefined : SessionWatchFrameSchema.safeParse(value);
    if (command.success || watch?.success) {
      this.emit('command', command.success ? command.data : watch!.data);
      return;
    }
    const ack = AckFrameSchema.safeParse(value);
    if (ack.success && ws === this.#ws) {
      // Backoff starts over only once a batch went through: a batch refused at every try keeps backing off.
      this.#attempt = 0;
      this.#options.outbox.ack(ack.data.seq);
      this.stats.ackedSeq = Math.max(this.stats.ackedSeq, ack.data.seq);
      this.#inFlight = this.#inFlight.filter((seq) => seq > ack.data.seq);
      this.emit('ack', ack.data.seq);
      this.#pump();
      return;
    }
    this.#options.logger.debug({ frame: text.slice(0, 200) }, 'ignored a frame from the collector');
  }

  /** Sends batches while fewer than maxInFlightBatches are unacked. */
  #pump(): void {
    const ws = this.#ws;
    if (!ws || !this.#ready || ws.readyState !== WebSocket.OPEN) return;
    const { outbox, batchRecords, batchBytes, maxInFlightBatches } = this.#options;
    while (this.#inFlight.length < maxInFlightBatches) {
      const rows = outbox.pending(this.#sentSeq, batchRecords, batchBytes);
      if (rows.length === 0) return;
      const last = rows.at(-1)!.seq;
      // Rows are stored as the wire JSON, so a batch is put together without parsing them.
      ws.send(`{"type":"batch","stream":${JSON.stringify(outbox.stream)},"events":[${rows.map((r) => r.json).join(',')}]}`);
      this.#inFlight.push(last);
      this.#sentSeq = last;
      this.stats.batchesSent++;
    }
  }
}
