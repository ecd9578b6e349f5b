// How the process sensor puts batches together when the kernel's events arrive split across them:
// batches packed as the addon packs them, through a stand-in addon (the kernel cannot be made to cut a
// batch at a given moment). The pids are above pid_max: nothing on the host answers for them.
import { afterEach, describe, expect, it } from 'vitest';
import { ProcessCreationFields, ProcessPrivilegeChangeFields, ProcessTerminationFields } from '../../../collector/protocol/index.ts';
import { fieldsOf, observationLog } from '../../../test/helpers/observations.ts';
import { silentLogger } from '../../log/index.ts';
import { FLAG_OWNER } from './connector-decode.ts';
import { createProcessSensor, type ProcessSensor } from './index.ts';
import { KIND, packRecord, standInAddon } from './testing.ts';

const root = process.platform === 'linux' && process.getuid?.() === 0;
const PARENT = 4_200_000;
const t0 = Date.now();
/** Wall and boot times of an event `ms` into the test. */
const at = (ms: number) => ({ timeMs: t0 + ms, bootMs: 1_000_000 + ms });

describe.skipIf(!root)('process events split across batches (stand-in addon, as root)', () => {
  let sensor: ProcessSensor | undefined;
  let addon: ReturnType<typeof standInAddon> | undefined;
  afterEach(async () => {
    await sensor?.stop();
    sensor = undefined;
    addon?.remove();
    addon = undefined;
  });

  async function start() {
    addon = standInAddon();
    const log = observationLog();
    sensor = createProcessSensor({ hostId: 'test-host', logger: silentLogger(), connectorPath: addon.path });
    await sensor.start(log.emit);
    expect(sensor.source).toBe('connector');
    const of = (category: string, pid: number) => log.all.filter((o) => o.category === category && fieldsOf(o)['ProcessId'] === pid);
    const opened = addon;
    return { log, of, deliver: (...records: Buffer[]) => opened.deliver(Buffer.concat(records)) };
  }

  it('takes a setuid program\'s new user, announced before a cut, as its exec\'s, not a privilege change', async () => {
    const { log, of, deliver } = await start();
    const pid = 4_200_001;
    deliver(
      packRecord(KIND.fork, { pid, parent: PARENT, ...at(0) }),
      packRecord(KIND.uid, { pid, a: 1000, b: 0, ...at(1) }),
      packRecord(KIND.cut, at(1.5)),
    );
    deliver(
      packRecord(KIND.exec, { pid, flags: FLAG_OWNER, a: 0, b: 0, blobs: { cmdline: 'sudo\0id\0', exe: '/usr/bin/sudo' }, ...at(1.6) }),
      packRecord(KIND.exit, { pid, parent: PARENT, ...at(3) }),
      packRecord(KIND.cut, at(4)),
    );
    await log.waitFor((o) => o.category === 'process_termination' && fieldsOf(o)['ProcessId'] === pid, 5_000, 'the end of sudo');
    expect(of('process_creation', pid).map((o) => ProcessCreationFields.parse(o.fields))).toMatchObject([{ Image: '/usr/bin/sudo', CommandLine: 'sudo id', User: 'root', ParentProcessId: PARENT }]);
    expect(of('process_privilege_change', pid)).toEqual([]);
    expect(sensor!.health().counters).toMatchObject({ setuidExecs: 1, privilegeChanges: 0 });
  });

  it('holds an exit read past the cut until its exec comes in the next batch', async () => {
    const { log, of, deliver } = await start();
    const pid = 4_200_002;
    deliver(
      packRecord(KIND.fork, { pid, parent: PARENT, ...at(10) }),
      packRecord(KIND.cut, at(10.5)),
      // Read from the bulk socket after the exec socket: it happened after the cut.
      packRecord(KIND.exit, { pid, parent: PARENT, a: 3 << 8, ...at(12) }),
    );
    deliver(
      packRecord(KIND.exec, { pid, flags: FLAG_OWNER, blobs: { cmdline: 'rm\0-rf\0/srv/logs\0', exe: '/usr/bin/rm' }, ...at(11) }),
      packRecord(KIND.cut, at(13)),
    );
    const ended = await log.waitFor((o) => o.category === 'process_termination' && fieldsOf(o)['ProcessId'] === pid, 5_000, 'the end of rm');
    const created = of('process_creation', pid).map((o) => ProcessCreationFields.parse(o.fields));
    expect(created).toMatchObject([{ Image: '/usr/bin/rm', CommandLine: 'rm -rf /srv/logs', ParentProcessId: PARENT }]);
    expect(ProcessTerminationFields.parse(ended.fields)).toMatchObject({ ProcessGuid: created[0]!.ProcessGuid, CommandLine: 'rm -rf /srv/logs', ExitCode: 3 });
    expect(of('process_termination', pid)).toHaveLength(1);
    expect(sensor!.table.get(pid)).toBeUndefined();
  });

  it('reports a running program\'s change of effective user once the stream is well past it with no exec', async () => {
    const { log, of, deliver } = await start();
    const pid = 4_200_003;
    deliver(
      packRecord(KIND.fork, { pid, parent: PARENT, ...at(20) }),
      packRecord(KIND.exec, { pid, flags: FLAG_OWNER, a: 1000, b: 1000, blobs: { cmdline: '/opt/vendor/agent\0', exe: '/opt/vendor/agent' }, ...at(21) }),
      packRecord(KIND.uid, { pid, a: 1000, b: 0, ...at(30) }),
      packRecord(KIND.cut, at(30.5)),
    );
    // Its exec might still come in the next batch: not reported yet.
    expect(of('process_privilege_change', pid)).toEqual([]);
    deliver(packRecord(KIND.cut, at(200)));
    const change = await log.waitFor((o) => o.category === 'process_privilege_change' && fieldsOf(o)['ProcessId'] === pid, 5_000, 'the change');
    expect(ProcessPrivilegeChangeFields.parse(change.fields)).toMatchObject({ Image: '/opt/vendor/agent', User: 'root' });
  });
});
