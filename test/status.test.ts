// The agent's status frames reaching the collector's ingest over a real WebSocket: `run` with delivery
// tells its version, its rules version and what its outbox still owes, after every welcome; the uplink
// retells it on its interval and never sends one the collector would refuse.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { v7 as uuidv7 } from 'uuid';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { OmEvent } from '../collector/protocol/index.ts';
import { startDelivery } from '../agent/commands/deliver.ts';
import { runAgent, type RunningAgent } from '../agent/commands/run.ts';
import { parseConfig } from '../agent/config/index.ts';
import { AGENT_VERSION } from '../agent/defaults.ts';
import { saveEnrollment } from '../agent/enroll.ts';
import { silentLogger } from '../agent/log/index.ts';
import { openOutbox } from '../agent/outbox/index.ts';
import { Uplink } from '../agent/uplink/index.ts';
import { startIngest, type IngestServer } from './helpers/ingest.ts';

const host = { id: 'status-test-host', name: 'hmi-status', idSource: 'test' };
// No sensors: the test alone decides what the outbox holds.
const config = parseConfig(['sensors:', ...['processes', 'connections', 'sessions', 'media'].map((name) => `  ${name}: { enabled: false }`)].join('\n'), 'test config');

const RULE = `title: Status test rule
id: 5b0e2c1a-0000-4000-8000-00000000e5a1
status: test
level: low
logsource:
    category: process_creation
    product: linux
detection:
    selection:
        CommandLine|contains: omwatch-status-marker
    condition: selection
`;

function event(n: number): Omit<OmEvent, 'stream' | 'seq' | 'hash' | 'prev'> {
  return {
    id: uuidv7(), time: new Date().toISOString(), host: { id: host.id, name: host.name }, product: 'linux', category: 'process_creation',
    fields: { ProcessId: 1000 + n, ParentProcessId: 1, Image: '/usr/bin/true', CommandLine: `true ${n}`, User: 'vendor1' },
  };
}

/** Resolves once the collector has acked the stream up to `seq`. */
function acked(uplink: Uplink, seq: number): Promise<void> {
  return new Promise((resolve) => {
    const check = () => {
      if (uplink.stats.ackedSeq < seq) return;
      uplink.off('ack', check);
      resolve();
    };
    uplink.on('ack', check);
    check();
  });
}

let root: string;
let collector: IngestServer;

beforeEach(async () => {
  root = mkdtempSync(join(tmpdir(), 'omwatch-status-'));
  collector = await startIngest(root);
});

afterEach(async () => {
  await collector.close();
  rmSync(root, { recursive: true, force: true });
});

describe('status frames', () => {
  it('run with delivery: the collector gets the agent version, the rules version and the unacked outbox depth, after every welcome', async () => {
    const agentData = join(root, 'agent');
    saveEnrollment(agentData, { agentId: collector.agentId, key: collector.key, collectorUrl: collector.url, enrolledAt: new Date().toISOString() });
    const rules = join(root, 'rule.yml');
    writeFileSync(rules, RULE);
    // Five records wait in the outbox before the agent first connects.
    const { outbox } = openOutbox({ path: join(agentData, 'outbox.db'), maxBytes: config.delivery.outboxMaxBytes, retainAckedMs: 60_000, host, product: 'linux' });
    for (let i = 0; i < 5; i++) outbox.append(event(i));
    outbox.flush();
    const owed = outbox.stats().unackedBytes;
    expect(owed).toBeGreaterThan(0);
    outbox.close();

    const logger = silentLogger();
    const delivery = startDelivery(agentData, config, host, logger);
    let agent: RunningAgent | undefined;
    try {
      // Told right after the welcome, before any batch: none of the five is acked, no rules are loaded yet.
      expect(await collector.waitStatus()).toEqual({ type: 'status', version: AGENT_VERSION, rulesVersion: 'none', outboxDepth: 5, outboxBytes: owed });

      // As the `run` command wires it: the running agent describes itself, and the collector is told at once.
      const running = await runAgent(config, host, logger, delivery.sink, { rulePaths: [rules] });
      agent = running;
      delivery.describeAgent(() => running.describe());
      const { rulesVersion } = running.describe();
      expect(rulesVersion).toMatch(/^[0-9a-f]{16}$/);
      expect(await collector.waitStatus((frame) => frame.rulesVersion === rulesVersion)).toMatchObject({ version: AGENT_VERSION, sensors: [] });

      // The five, `started` and `rules_loaded` stored and acked: after a reconnect the outbox owes nothing.
      await acked(delivery.uplink, 7);
      const before = collector.statuses.length;
      collector.connections.at(-1)!.close(1001, 'collector restarting');
      expect(await collector.waitStatus((_frame, index) => index >= before)).toEqual({
        type: 'status', version: AGENT_VERSION, rulesVersion, outboxDepth: 0, outboxBytes: 0, sensors: [],
      });
      expect(delivery.uplink.stats.connects).toBe(2);
      expect(collector.ingest.counters.rejected).toEqual({});
    } finally {
      await agent?.stop();
      await delivery.stop();
    }
  });

  it('Uplink: retells status every statusIntervalMs on one connection, and never sends one the frame schema refuses', async () => {
    const { outbox } = openOutbox({ path: join(root, 'outbox.db'), maxBytes: 1 << 24, retainAckedMs: 60_000, host, product: 'linux' });
    let rulesVersion = 'rules-1';
    const uplink = new Uplink({
      collectorUrl: collector.url, key: collector.key, outbox, logger: silentLogger(), statusIntervalMs: 20,
      status: () => ({ version: AGENT_VERSION, rulesVersion, outboxDepth: outbox.stats().unacked, outboxBytes: outbox.stats().unackedBytes }),
    });
    try {
      uplink.start();
      // The welcome's and two of the timer's.
      await collector.waitStatus((_frame, index) => index === 2);
      expect(uplink.stats.connects).toBe(1);

      // Past the schema's 128 characters: the collector would close the connection on it at every try.
      rulesVersion = 'x'.repeat(129);
      uplink.sendStatus();
      expect(uplink.stats.statusInvalid).toBe(1);
      rulesVersion = 'rules-2';
      expect(await collector.waitStatus((frame) => frame.rulesVersion === 'rules-2')).toEqual({ type: 'status', version: AGENT_VERSION, rulesVersion: 'rules-2', outboxDepth: 0, outboxBytes: 0 });
      expect(collector.statuses.every(({ frame }) => frame.rulesVersion.length <= 128)).toBe(true);
      expect(collector.ingest.counters.rejected).toEqual({});
      expect(uplink.stats.connects).toBe(1);
    } finally {
      await uplink.stop();
      outbox.close();
    }
  });
});
