// An outbox file restored from a backup (or a reverted VM snapshot) is behind the collector: its next
// seqs are ones the collector already holds, with other contents. The agent must not send them into the
// old stream, where they would be taken for duplicates and dropped: it sets the file aside and starts a
// new stream that says why.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AGENT_BIN, cli, COLLECTOR_BIN, createToken, freePort, start, startCollector } from './helpers/delivery.ts';

interface Line {
  stream: string;
  seq: number;
  record: { category?: string; fields?: Record<string, unknown> };
}

async function runAgent(agentData: string, during: () => void = () => {}): Promise<void> {
  const agent = start([process.execPath, AGENT_BIN, 'run', '--data', agentData, '--log-level', 'info'], {}, { searchStderr: true });
  await agent.waitLine(/"msg":"uplink connected"/);
  await agent.waitLine(/"msg":"agent running"/);
  during();
  agent.child.kill('SIGTERM');
  expect((await agent.exited).code).toBe(0);
}

describe('an outbox behind the collector', () => {
  it('is set aside and a new stream starts, so no record is taken for one already held', async () => {
    const root = mkdtempSync(join(tmpdir(), 'omwatch-behind-'));
    const collectorData = join(root, 'collector');
    const agentData = join(root, 'agent');
    const collector = await startCollector(collectorData, await freePort());
    try {
      expect(cli(AGENT_BIN, ['enroll', '--collector', collector.url, '--token', createToken(collectorData, 'enroll'), '--data', agentData]).status).toBe(0);
      await runAgent(agentData);
      // The backup: the outbox as it is after a first, short run.
      copyFileSync(join(agentData, 'outbox.db'), join(root, 'backup.db'));
      // A second run adds many records to the stream (forty processes, each an event).
      await runAgent(agentData, () => {
        for (let i = 0; i < 40; i++) spawnSync('/bin/sh', ['-c', 'sleep 0.15']);
      });
      const before = lines(collectorData);
      const oldStream = before[0]!.stream;
      const held = Math.max(...before.map((l) => l.seq));
      // The restore, then a third run.
      for (const suffix of ['', '-wal', '-shm']) rmSync(join(agentData, `outbox.db${suffix}`), { force: true });
      copyFileSync(join(root, 'backup.db'), join(agentData, 'outbox.db'));
      await runAgent(agentData);

      expect(readdirSync(agentData).some((f) => f.startsWith('outbox.db.behind-'))).toBe(true);
      expect(existsSync(join(agentData, 'outbox.db'))).toBe(true);
      const after = lines(collectorData);
      // The old stream is as it was: nothing of the third run went into it.
      expect(after.filter((l) => l.stream === oldStream).map((l) => l.seq)).toEqual(before.map((l) => l.seq));
      expect(Math.max(...after.filter((l) => l.stream === oldStream).map((l) => l.seq))).toBe(held);
      const fresh = after.filter((l) => l.stream !== oldStream);
      expect(fresh[0]!.record.fields).toMatchObject({ Action: 'outbox_reset', PreviousStream: oldStream, Message: expect.stringContaining('restored or reverted') });
      expect(fresh.map((l) => l.record.fields?.['Action'])).toContain('stopped');
      expect(cli(COLLECTOR_BIN, ['verify', '--data', collectorData]).status).toBe(0);
    } finally {
      collector.child.kill('SIGKILL');
    }
  }, 120_000);
});

function lines(collectorData: string): Line[] {
  const out = cli(COLLECTOR_BIN, ['export', '--data', collectorData]).stdout.trim();
  return out.split('\n').map((l) => JSON.parse(l) as Line).filter((l) => l.record);
}
