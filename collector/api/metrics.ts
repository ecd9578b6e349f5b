// Prometheus metrics (prom-client, a registry of the collector's own): connected agents, records
// stored (rate() of it is events/s), rejects by reason, and how long the store takes to commit.
// Counters the collector already keeps are read at scrape time, so there is one source for each figure.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface MetricsSources {
  agentsConnected: () => number;
  recordsStored: () => number;
  duplicates: () => number;
  /** Frames and upgrades refused, by reason. */
  rejects: () => Record<string, number>;
  liveSubscribers: () => number;
  liveSessions: () => number;
}

export interface CollectorMetrics {
  registry: Registry;
  /** Times one group commit. */
  observeCommit(seconds: number, ok: boolean): void;
}

export function collectorMetrics(sources: MetricsSources): CollectorMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'omwatch_collector_' });
  const readAtScrape = [
    new Gauge({
      name: 'omwatch_agents_connected', help: 'Agents with an open ingest connection', registers: [],
      collect() {
        this.set(sources.agentsConnected());
      },
    }),
    counterOf('omwatch_records_stored_total', 'Events and alerts stored (rate() of it is events per second)', sources.recordsStored),
    counterOf('omwatch_records_duplicate_total', 'Records received again and not stored twice', sources.duplicates),
    new Counter({
      name: 'omwatch_rejects_total', help: 'Frames, records and connections refused, by reason', labelNames: ['reason'], registers: [],
      collect() {
        this.reset();
        for (const [reason, count] of Object.entries(sources.rejects())) this.inc({ reason }, count);
      },
    }),
    new Gauge({
      name: 'omwatch_live_subscribers', help: 'Analyst connections on the live alert feed', registers: [],
      collect() {
        this.set(sources.liveSubscribers());
      },
    }),
    new Gauge({
      name: 'omwatch_sessions_live', help: 'Recorded shell sessions live on connected agents', registers: [],
      collect() {
        this.set(sources.liveSessions());
      },
    }),
  ];
  for (const metric of readAtScrape) registry.registerMetric(metric);
  const commits = new Histogram({
    name: 'omwatch_store_commit_seconds', help: 'Time to commit one group of batches durably', labelNames: ['outcome'], registers: [registry],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  });
  return {
    registry,
    observeCommit(seconds, ok) {
      commits.observe({ outcome: ok ? 'ok' : 'failed' }, seconds);
    },
  };
}

/** A Prometheus counter whose value is a count the collector keeps already, read at each scrape. */
function counterOf(name: string, help: string, read: () => number): Counter {
  return new Counter({
    name, help, registers: [],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}
