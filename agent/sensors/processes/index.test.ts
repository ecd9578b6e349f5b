import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { realpathSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { ProcessCreationFields, ProcessTerminationFields } from '../../../collector/protocol/index.ts';
import { silentLogger } from '../../log/index.ts';
import { fieldsOf, observationLog } from '../../../test/helpers/observations.ts';
import { createProcessSensor, type ProcessSensor } from './index.ts';
import { ROTATING_RECHECKS } from './table.ts';

const SLEEP = realpathSync('/bin/sleep');
const NODE = realpathSync(process.execPath);

describe('process sensor, live on this host', () => {
  let sensor: ProcessSensor | undefined;
  afterEach(async () => {
    await sensor?.stop();
  });

  it('sees every one of 20 processes that live 250 ms, with Image, CommandLine and ParentImage', async () => {
    const log = observationLog();
    sensor = createProcessSensor({ hostId: 'test-host', logger: silentLogger() });
    await sensor.start(log.emit);
    const children = Array.from({ length: 20 }, (_, i) => spawn(SLEEP, [`0.25${i}`]));
    await Promise.all(children.map((child) => once(child, 'exit')));
    for (const [i, child] of children.entries()) {
      const created = await log.waitFor((o) => o.category === 'process_creation' && fieldsOf(o)['ProcessId'] === child.pid, 5_000, `creation of pid ${child.pid}`);
      const fields = ProcessCreationFields.parse(created.fields);
      expect(fields.Image).toBe(SLEEP);
      expect(fields.CommandLine).toBe(`${SLEEP} 0.25${i}`);
      expect(fields.ParentProcessId).toBe(process.pid);
      expect(fields.ParentImage).toBe(NODE);
      expect(fields.User).toBe('root');
      expect(fields.CurrentDirectory).toBe(process.cwd());
      const ended = await log.waitFor((o) => o.category === 'process_termination' && fieldsOf(o)['ProcessId'] === child.pid, 5_000, `termination of pid ${child.pid}`);
      const end = ProcessTerminationFields.parse(ended.fields);
      expect(end.ProcessGuid).toBe(fields.ProcessGuid);
      expect(end.DurationSeconds).toBeGreaterThanOrEqual(0.2);
    }
  });

  it('fills parent fields for a parent that started before the agent', async () => {
    // The shell is running before the sensor starts; only after that does it fork the sleep.
    const shell = spawn('/bin/sh', ['-c', 'read line; /bin/sleep 0.3; true'], { stdio: ['pipe', 'ignore', 'ignore'] });
    await once(shell, 'spawn');
    const log = observationLog();
    sensor = createProcessSensor({ hostId: 'test-host', logger: silentLogger() });
    await sensor.start(log.emit);
    expect(sensor.table.get(shell.pid!)?.commandLine).toBe('/bin/sh -c read line; /bin/sleep 0.3; true');
    shell.stdin!.end('go\n');
    const created = await log.waitFor((o) => o.category === 'process_creation' && fieldsOf(o)['ParentProcessId'] === shell.pid, 5_000, 'the sleep');
    expect(fieldsOf(created)['Image']).toBe(SLEEP);
    expect(fieldsOf(created)['ParentImage']).toBe(realpathSync('/bin/sh'));
    expect(fieldsOf(created)['ParentCommandLine']).toBe('/bin/sh -c read line; /bin/sleep 0.3; true');
    await once(shell, 'exit');
  });

  it('reports a program that a running process execs long after it started', { timeout: 120_000 }, async () => {
    const log = observationLog();
    sensor = createProcessSensor({ hostId: 'test-host', logger: silentLogger() });
    await sensor.start(log.emit);
    // A wrapper that waits, then execs its payload: same pid, new program, well past the first read.
    const wrapper = spawn('/bin/sh', ['-c', 'read go; exec /bin/sleep 60'], { stdio: ['pipe', 'ignore', 'ignore'] });
    await log.waitFor((o) => o.category === 'process_creation' && fieldsOf(o)['ProcessId'] === wrapper.pid, 5_000, 'the wrapper');
    const marker = spawn(SLEEP, ['0.4']);
    await log.waitFor((o) => o.category === 'process_termination' && fieldsOf(o)['ProcessId'] === marker.pid, 5_000, 'time to pass');
    wrapper.stdin!.end('go\n');
    // Older processes are re-read a few per scan, in rotation: the whole table within this bound.
    const rotationMs = Math.ceil(sensor.table.size / ROTATING_RECHECKS) * 100;
    const payload = await log.waitFor((o) => o.category === 'process_creation' && fieldsOf(o)['ProcessId'] === wrapper.pid && fieldsOf(o)['Image'] === SLEEP, rotationMs + 5_000, 'the payload');
    expect(fieldsOf(payload)['CommandLine']).toBe('/bin/sleep 60');
    wrapper.kill();
  });

  it('does not report the baseline as created, and reports nothing twice', async () => {
    const log = observationLog();
    sensor = createProcessSensor({ hostId: 'test-host', logger: silentLogger() });
    await sensor.start(log.emit);
    const baseline = new Set([...sensor.table.entries()].map((entry) => `${entry.pid}/${entry.startTimeMs}`));
    const child = spawn(SLEEP, ['0.3']);
    await once(child, 'exit');
    await log.waitFor((o) => o.category === 'process_termination' && fieldsOf(o)['ProcessId'] === child.pid);
    const creations = log.all.filter((o) => o.category === 'process_creation').map(fieldsOf);
    for (const fields of creations) {
      expect(baseline.has(`${String(fields['ProcessId'])}/${Date.parse(String(fields['StartTime']))}`)).toBe(false);
    }
    // The same process may be reported twice only for an exec, that is with another program.
    const reported = creations.map((f) => `${String(f['ProcessGuid'])} ${String(f['Image'])} ${String(f['CommandLine'])}`);
    expect(new Set(reported).size).toBe(reported.length);
    expect(sensor.health().state).toBe('ok');
  });
});
