// A record the collector would refuse never enters the stream (it would block it for good): the sink
// puts an agent event saying what was wrong in its place.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { v7 as uuidv7 } from 'uuid';
import { describe, expect, it } from 'vitest';
import type { OmEvent } from '../../collector/protocol/index.ts';
import { silentLogger } from '../log/index.ts';
import { openOutbox } from './index.ts';
import { OutboxSink } from './sink.ts';

const host = { id: 'h1', name: 'hmi' };

describe('OutboxSink', () => {
  it('appends valid records and replaces an invalid one with a sensor_error agent event', () => {
    const { outbox } = openOutbox({ path: join(mkdtempSync(join(tmpdir(), 'omwatch-sink-')), 'outbox.db'), maxBytes: 1 << 24, retainAckedMs: 0, host, product: 'linux' });
    const agentEvent = (fields: Extract<OmEvent, { category: 'agent' }>['fields']) => ({ id: uuidv7(), time: new Date().toISOString(), host, product: 'linux', category: 'agent', fields }) as OmEvent;
    const sink = new OutboxSink(outbox, silentLogger(), agentEvent);
    const valid = { id: uuidv7(), time: new Date().toISOString(), host, product: 'linux', category: 'process_creation', fields: { ProcessId: 2, ParentProcessId: 1, Image: '/usr/bin/id', CommandLine: 'id' } } as OmEvent;
    const invalid = { ...valid, id: uuidv7(), fields: { ...valid.fields, ProcessId: 'not a number' } } as unknown as OmEvent;
    sink.write(valid);
    sink.write(invalid);
    outbox.flush();
    const rows = outbox.pending(0, 10, 1 << 20).map((row) => JSON.parse(row.json) as OmEvent);
    expect(rows.map((r) => r.category)).toEqual(['process_creation', 'agent']);
    expect(rows[0]!.id).toBe(valid.id);
    expect(rows[1]!.fields).toMatchObject({ Action: 'sensor_error', Code: 'RECORD_INVALID', Message: expect.stringContaining('fields.ProcessId') });
    expect(sink.refused).toBe(1);
    outbox.close();
  });
});
