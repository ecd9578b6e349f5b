// `run` with delivery: the outbox under the data folder and the uplink to the enrolled collector,
// started before the sensors and stopped after them, so every record reaches the outbox.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentConfig } from '../config/index.ts';
import { AGENT_VERSION } from '../defaults.ts';
import { EnrollError, loadEnrollment } from '../enroll.ts';
import { toEvent } from '../events.ts';
import { currentProduct, type HostIdentity } from '../host.ts';
import type { Logger } from '../log/index.ts';
import { openOutbox, restartStream } from '../outbox/index.ts';
import { OutboxSink } from '../outbox/sink.ts';
import { Uplink } from '../uplink/index.ts';
import type { PtyFrame, SessionCommandFrame, SessionKillFrame, SessionsFrame, StatusFrame } from '../../collector/protocol/index.ts';
import type { RecordSink } from './sink.ts';

export { DEFAULT_DATA_DIR } from '../defaults.ts';

/** What `run` says of the agent in status frames: the rule set it judges by, and its sensors' states. */
export interface AgentDescription {
  rulesVersion: string;
  sensors?: StatusFrame['sensors'];
}

/** The rules version told before `run` has described the agent: no rule set is loaded yet. */
export const NO_RULES = 'none';

export interface Delivery {
  sink: RecordSink;
  uplink: Uplink;
  /** Relays a live session's output to the collector while someone watches it there (best effort). */
  live(frame: PtyFrame): void;
  /** Tells the collector which recorded shells are live (where its kills go). */
  setSessions(live: SessionsFrame['live']): void;
  onKill(handler: (frame: SessionKillFrame) => void): void;
  /** Where status frames get the rules version and sensors from (`run`, once its rules are loaded); tells the collector now. */
  describeAgent(describe: () => AgentDescription): void;
  /** True while the outbox is near its cap with undelivered rows: a recording is then behind. */
  recordingBehind(): boolean;
  /** Flushes the outbox, lets in-flight batches be acked (briefly), closes. */
  stop(): Promise<void>;
}

export function readCa(path: string): string {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (error) {
    throw new EnrollError(`cannot read the CA file ${path}: ${(error as Error).message}`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new EnrollError(`${path} is not a PEM certificate`);
  return pem;
}

export function startDelivery(dataDir: string, config: AgentConfig, host: HostIdentity, logger: Logger): Delivery {
  const enrollment = loadEnrollment(dataDir);
  if (!enrollment) throw new EnrollError(`not enrolled: no ${join(dataDir, 'enrollment.json')}; run omwatch-agent enroll --collector URL --token T first`);
  const { delivery } = config;
  const outboxOptions = {
    path: join(dataDir, 'outbox.db'), maxBytes: delivery.outboxMaxBytes, retainAckedMs: delivery.retainAckedMs,
    host: { id: host.id, name: host.name }, product: currentProduct(),
  };
  const opened = openOutbox(outboxOptions);
  if (opened.reset) logger.error({ movedTo: opened.reset.movedTo, reason: opened.reset.reason }, 'the outbox was corrupt: set aside, a new stream starts');
  let { outbox } = opened;
  let sessions: SessionsFrame['live'] = [];
  let onKill: ((frame: SessionKillFrame) => void) | undefined;
  let describe: (() => AgentDescription) | undefined;
  // Asked at each status frame; `outbox` is read then, as a restarted stream replaces it.
  const status = (): Omit<StatusFrame, 'type'> => {
    const { unacked, unackedBytes } = outbox.stats();
    const agent = describe?.();
    return {
      version: AGENT_VERSION, rulesVersion: agent?.rulesVersion ?? NO_RULES, outboxDepth: unacked, outboxBytes: unackedBytes,
      ...(agent?.sensors ? { sensors: agent.sensors } : {}),
    };
  };
  /** Sessions someone watches at the collector, as it last said on this connection. */
  const watched = new Set<string>();
  const sink = new OutboxSink(outbox, logger, (fields) => toEvent({ category: 'agent', timeMs: Date.now(), fields }, host, currentProduct()));
  const connect = (): Uplink => {
    const next = new Uplink({
      collectorUrl: enrollment.collectorUrl, key: enrollment.key, outbox, logger: logger.child({ part: 'uplink' }),
      batchRecords: delivery.batchRecords, maxInFlightBatches: delivery.maxInFlightBatches, status,
      ...(enrollment.caPem ? { caPem: enrollment.caPem } : {}),
    });
    next.once('behind', (collectorSeq: number) => {
      // The collector is ahead of this outbox (a restored or reverted file): a new stream, then reconnect.
      const reason = `the collector holds seq ${collectorSeq} of stream ${outbox.stream}, past this outbox's last seq: the file was restored or reverted`;
      const restarted = restartStream(outbox, outboxOptions, reason);
      logger.error({ movedTo: restarted.reset?.movedTo, previousStream: outbox.stream, stream: restarted.outbox.stream }, 'the collector is ahead of this outbox: set aside, a new stream starts');
      outbox = restarted.outbox;
      sink.use(outbox);
      void next.stop(0);
      uplink = connect();
    });
    next.on('command', (frame: SessionCommandFrame) => {
      if (frame.type === 'session.kill') onKill?.(frame);
      else if (frame.watched) watched.add(frame.sessionId);
      else watched.delete(frame.sessionId);
    });
    // A new connection starts unwatched; the collector says again what is watched when sessions are announced.
    next.on('disconnected', () => watched.clear());
    next.setSessions(sessions);
    next.start();
    return next;
  };
  let uplink = connect();
  logger.info({ collector: enrollment.collectorUrl, agentId: enrollment.agentId, stream: outbox.stream }, 'delivering to the collector');
  return {
    sink,
    get uplink() {
      return uplink;
    },
    live: (frame) => {
      if (watched.has(frame.sessionId)) uplink.sendLive(frame);
    },
    setSessions(live) {
      sessions = live;
      uplink.setSessions(live);
    },
    onKill(handler) {
      onKill = handler;
    },
    describeAgent(next) {
      describe = next;
      uplink.sendStatus();
    },
    recordingBehind() {
      const stats = outbox.stats();
      return stats.bytes >= delivery.outboxMaxBytes * 0.8 && stats.unacked >= stats.rows / 2;
    },
    async stop() {
      try {
        outbox.flush();
      } finally {
        // Every stop step runs: a flush that fails (disk full) still lets the uplink and the file close.
        await uplink.stop();
        outbox.close();
      }
    },
  };
}
