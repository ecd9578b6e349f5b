// `run` with delivery: the outbox under the data folder and the uplink to the enrolled collector,
// started before the sensors and stopped after them, so every record reaches the outbox.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentConfig } from '../config/index.ts';
import { EnrollError, loadEnrollment } from '../enroll.ts';
import { toEvent } from '../events.ts';
import { currentProduct, type HostIdentity } from '../host.ts';
import type { Logger } from '../log/index.ts';
import { openOutbox } from '../outbox/index.ts';
import { OutboxSink } from '../outbox/sink.ts';
import { Uplink } from '../uplink/index.ts';
import type { RecordSink } from './sink.ts';

export const DEFAULT_DATA_DIR = '/var/lib/omwatch';

export interface Delivery {
  sink: RecordSink;
  uplink: Uplink;
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
  const opened = openOutbox({
    path: join(dataDir, 'outbox.db'), maxBytes: delivery.outboxMaxBytes, retainAckedMs: delivery.retainAckedMs,
    host: { id: host.id, name: host.name }, product: currentProduct(),
  });
  if (opened.reset) logger.error({ movedTo: opened.reset.movedTo, reason: opened.reset.reason }, 'the outbox was corrupt: set aside, a new stream starts');
  const { outbox } = opened;
  const uplink = new Uplink({
    collectorUrl: enrollment.collectorUrl, key: enrollment.key, outbox, logger: logger.child({ part: 'uplink' }),
    batchRecords: delivery.batchRecords, maxInFlightBatches: delivery.maxInFlightBatches,
    ...(enrollment.caPem ? { caPem: enrollment.caPem } : {}),
  });
  uplink.start();
  logger.info({ collector: enrollment.collectorUrl, agentId: enrollment.agentId, stream: outbox.stream }, 'delivering to the collector');
  return {
    sink: new OutboxSink(outbox, logger, (fields) => toEvent({ category: 'agent', timeMs: Date.now(), fields }, host, currentProduct())),
    uplink,
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
