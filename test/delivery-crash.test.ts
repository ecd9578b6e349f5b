// Nothing is lost or doubled when the agent and the collector die at random moments: an agent producing
// events is SIGKILLed 20 times and restarted, the collector SIGKILLed and restarted 5 times in the same
// run; at the end every seq of the stream is stored exactly once and `verify` passes.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { cli, COLLECTOR_BIN, AGENT_BIN, createToken, freePort, PRODUCER, start, startCollector, type Proc } from './helpers/delivery.ts';

describe('delivery under crashes', () => {
  it('stores every seq exactly once through 20 agent and 5 collector SIGKILLs', async () => {
    const root = mkdtempSync(join(tmpdir(), 'omwatch-crash-'));
    const collectorData = join(root, 'collector');
    const agentData = join(root, 'agent');
    const port = await freePort();
    let collector: Proc & { url: string } = await startCollector(collectorData, port);
    const token = createToken(collectorData, 'enroll');
    const enrolled = cli(AGENT_BIN, ['enroll', '--collector', collector.url, '--token', token, '--data', agentData, '--name', 'crash-test']);
    expect(enrolled.status, enrolled.stderr).toBe(0);

    // Deterministic "random" moments, so a failure can be replayed.
    let state = 20_261_128;
    const random = () => (state = (state * 1_103_515_245 + 12_345) & 0x7fffffff) / 0x7fffffff;
    const collectorKillsAt = new Set([2, 6, 10, 14, 18]);
    let streamId = '';
    try {
      for (let round = 0; round < 20; round++) {
        const producer = start([process.execPath, '--import', 'tsx', PRODUCER, '--data', agentData, '--rate', '3000']);
        const ready = await producer.waitLine(/^ready (\S+) (\d+)/);
        streamId ||= ready[1]!;
        expect(ready[1], 'a restarted agent continues its stream').toBe(streamId);
        // Kill after a random number of appended events: a moment chosen by progress, not by a clock.
        const events = 100 * (1 + Math.floor(random() * 8));
        await producer.waitLine(new RegExp(`^appended ${events}$`));
        if (collectorKillsAt.has(round)) {
          collector.child.kill('SIGKILL');
          await collector.exited;
          collector = await startCollector(collectorData, port);
        }
        producer.child.kill('SIGKILL');
        await producer.exited;
      }
      // A last run with nothing new, until everything written is acked.
      const last = start([process.execPath, '--import', 'tsx', PRODUCER, '--data', agentData, '--count', '0']);
      const drained = await last.waitLine(/^drained (\d+)/, 60_000);
      last.child.kill('SIGTERM');
      await last.exited;
      const lastSeq = Number(drained[1]);
      expect(lastSeq).toBeGreaterThan(2_000);

      collector.child.kill('SIGTERM');
      await collector.exited;
      const db = new Database(join(collectorData, 'collector.db'), { readonly: true });
      const seqs = db.prepare('SELECT seq FROM records WHERE stream = ? ORDER BY seq').pluck().all(streamId) as number[];
      db.close();
      expect(seqs.length).toBe(lastSeq);
      expect(seqs[0]).toBe(1);
      expect(seqs.at(-1)).toBe(lastSeq);
      expect(new Set(seqs).size).toBe(seqs.length);
      const verify = cli(COLLECTOR_BIN, ['verify', '--data', collectorData]);
      expect(verify.stdout, verify.stderr).toMatch(/1 streams, 0 broken/);
      expect(verify.status).toBe(0);
    } finally {
      collector.child.kill('SIGKILL');
    }
  }, 240_000);
});
