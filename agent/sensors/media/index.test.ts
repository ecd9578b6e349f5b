// The media sensor against a fake sysfs tree of real directories, files and symlinks laid out as
// the kernel lays them out, and a mountinfo file rewritten the way mounts come and go.
import { mkdir, mkdtemp, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RemovableMediaFields } from '../../../collector/protocol/index.ts';
import { silentLogger } from '../../log/index.ts';
import type { Observation } from '../types.ts';
import { createMediaSensor, type MediaSensor } from './index.ts';

const INTERVAL_MS = 10;
const DEADLINE_MS = 5_000;

const USB_DEVICE = 'devices/pci0000:00/0000:00:14.0/usb2/2-1';
const SCSI_DEVICE = `${USB_DEVICE}/2-1:1.0/host6/target6:0:0/6:0:0:0`;
const SDB = `${SCSI_DEVICE}/block/sdb`;

const BASE_MOUNTINFO = [
  '22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw',
  '28 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,errors=remount-ro',
].join('\n') + '\n';
const STICK_MOUNT = '612 28 8:17 / /media/operator/USB\\040STICK rw,nosuid,nodev,relatime shared:330 - vfat /dev/sdb1 rw,uid=1000\n';

let root: string;
let sysRoot: string;
let mountInfoPath: string;
let sensor: MediaSensor | undefined;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'omwatch-media-'));
  sysRoot = join(root, 'sys');
  mountInfoPath = join(root, 'mountinfo');
  await writeAtomic(mountInfoPath, BASE_MOUNTINFO);
});

afterEach(async () => {
  await sensor?.stop();
  sensor = undefined;
  await rm(root, { recursive: true, force: true });
});

/** Writes each `relative path → content` under `dir`, making directories as needed. */
async function writeTree(dir: string, files: Record<string, string>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, path)), { recursive: true });
    await writeFile(join(dir, path), content);
  }
}

/** Replaces a file in one step, as the kernel presents mountinfo: a scan never sees it half written. */
async function writeAtomic(path: string, content: string): Promise<void> {
  await writeFile(`${path}.tmp`, content);
  await rename(`${path}.tmp`, path);
}

/** `/sys/block/<name>` → `../<devicePath>`, created last so a scan never sees a half-built device. */
async function linkBlock(name: string, devicePath: string): Promise<void> {
  await mkdir(join(sysRoot, 'block'), { recursive: true });
  await symlink(join('..', devicePath), join(sysRoot, 'block', name));
}

/** The non-USB block devices every host has, which the sensor must pass over. */
async function makeBaseSysfs(): Promise<void> {
  await writeTree(sysRoot, {
    'devices/virtual/block/loop0/removable': '0\n',
    'devices/virtual/block/loop0/size': '0\n',
    'devices/virtual/block/loop0/uevent': 'MAJOR=7\nMINOR=0\nDEVNAME=loop0\nDEVTYPE=disk\n',
    'devices/pci0000:00/0000:00:02.0/virtio1/block/vda/removable': '0\n',
    'devices/pci0000:00/0000:00:02.0/virtio1/block/vda/size': '536870912\n',
    'devices/pci0000:00/0000:00:02.0/virtio1/block/vda/uevent': 'MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\n',
    // The root hub has an idVendor too; the sensor must stop at the nearer USB device.
    'devices/pci0000:00/0000:00:14.0/usb2/idVendor': '1d6b\n',
    'devices/pci0000:00/0000:00:14.0/usb2/idProduct': '0003\n',
  });
  await linkBlock('loop0', 'devices/virtual/block/loop0');
  await linkBlock('vda', 'devices/pci0000:00/0000:00:02.0/virtio1/block/vda');
}

/** A SanDisk stick as sysfs shows it; `overrides` replace or add files relative to the sysfs root. */
async function plugStick(overrides: Record<string, string> = {}): Promise<void> {
  await writeTree(sysRoot, {
    [`${USB_DEVICE}/idVendor`]: '0781\n',
    [`${USB_DEVICE}/idProduct`]: '5583\n',
    [`${USB_DEVICE}/serial`]: '4C530001230508115245\n',
    [`${USB_DEVICE}/manufacturer`]: ' USB\n',
    [`${USB_DEVICE}/product`]: ' SanDisk 3.2Gen1\n',
    [`${SCSI_DEVICE}/vendor`]: 'SanDisk \n',
    [`${SCSI_DEVICE}/model`]: 'Ultra Fit       \n',
    [`${SDB}/removable`]: '1\n',
    [`${SDB}/size`]: '60063744\n',
    [`${SDB}/uevent`]: 'MAJOR=8\nMINOR=16\nDEVNAME=sdb\nDEVTYPE=disk\n',
    [`${SDB}/sdb1/partition`]: '1\n',
    [`${SDB}/sdb1/size`]: '60061696\n',
    [`${SDB}/sdb1/uevent`]: 'MAJOR=8\nMINOR=17\nDEVNAME=sdb1\nDEVTYPE=partition\nPARTN=1\n',
    ...overrides,
  });
  // As in sysfs: the disk's `device` link points at its SCSI device.
  await symlink('../../../6:0:0:0', join(sysRoot, SDB, 'device'));
  await linkBlock('sdb', SDB);
}

async function unplugStick(): Promise<void> {
  await unlink(join(sysRoot, 'block', 'sdb'));
  await rm(join(sysRoot, USB_DEVICE), { recursive: true });
}

/** Collects what the sensor emits; `next` waits for the next observation, up to a deadline. */
function recorder() {
  const seen: Observation[] = [];
  let read = 0;
  let wake: (() => void) | undefined;
  return {
    seen,
    emit(observation: Observation): void {
      seen.push(observation);
      wake?.();
    },
    async next(): Promise<Observation> {
      const deadline = Date.now() + DEADLINE_MS;
      while (read >= seen.length) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no observation within ${DEADLINE_MS} ms; seen ${JSON.stringify(seen)}`);
        await new Promise<void>((resolve) => {
          const timeout = setTimeout(resolve, left);
          wake = () => {
            clearTimeout(timeout);
            resolve();
          };
        });
        wake = undefined;
      }
      const observation = seen[read++];
      if (observation === undefined) throw new Error('unreachable: observation index out of range');
      return observation;
    },
  };
}

const STICK = { Vendor: 'SanDisk', Model: 'Ultra Fit', Serial: '4C530001230508115245' };
const ON_MOUNT = { ...STICK, Device: '/dev/sdb1', SizeBytes: 60061696 * 512, MountPoint: '/media/operator/USB STICK', FileSystem: 'vfat' };

function expectValid(observation: Observation, fields: Record<string, unknown>): void {
  expect(observation.category).toBe('removable_media');
  expect(typeof observation.timeMs).toBe('number');
  expect(observation.fields).toEqual(fields);
  expect(RemovableMediaFields.parse(observation.fields)).toEqual(fields);
}

describe('media sensor', () => {
  it('reports attach, mount, unmount and detach of a USB stick, in order', async () => {
    await makeBaseSysfs();
    const events = recorder();
    sensor = createMediaSensor({ sysRoot, mountInfoPath, intervalMs: INTERVAL_MS, logger: silentLogger() });
    await sensor.start(events.emit);
    expect(sensor.health()).toMatchObject({ name: 'media', state: 'ok', source: join(sysRoot, 'block') });
    expect(sensor.snapshot()).toEqual([]);

    await plugStick();
    expectValid(await events.next(), { Action: 'attach', Device: '/dev/sdb', SizeBytes: 60063744 * 512, ...STICK });
    expect(sensor.snapshot()).toEqual([{
      device: '/dev/sdb',
      majorMinor: '8:16',
      removable: true,
      vendor: 'SanDisk',
      model: 'Ultra Fit',
      serial: '4C530001230508115245',
      sizeBytes: 60063744 * 512,
      usb: { idVendor: '0781', idProduct: '5583', manufacturer: 'USB', product: 'SanDisk 3.2Gen1' },
      partitions: [{ device: '/dev/sdb1', majorMinor: '8:17', sizeBytes: 60061696 * 512 }],
    }]);

    await writeAtomic(mountInfoPath, BASE_MOUNTINFO + STICK_MOUNT);
    expectValid(await events.next(), { Action: 'mount', ...ON_MOUNT });

    await writeAtomic(mountInfoPath, BASE_MOUNTINFO);
    expectValid(await events.next(), { Action: 'unmount', ...ON_MOUNT });

    await unplugStick();
    expectValid(await events.next(), { Action: 'detach', Device: '/dev/sdb', SizeBytes: 60063744 * 512, ...STICK });

    expect(events.seen).toHaveLength(4);
    expect(sensor.health()).toMatchObject({ state: 'ok', counters: { emitted: 4, devices: 0, readErrors: 0 } });
  });

  it('takes what is present at start as the baseline, without attach or mount', async () => {
    await makeBaseSysfs();
    await plugStick();
    await writeAtomic(mountInfoPath, BASE_MOUNTINFO + STICK_MOUNT);
    const events = recorder();
    sensor = createMediaSensor({ sysRoot, mountInfoPath, intervalMs: INTERVAL_MS, logger: silentLogger() });
    await sensor.start(events.emit);
    expect(sensor.snapshot().map((device) => device.device)).toEqual(['/dev/sdb']);

    await writeAtomic(mountInfoPath, BASE_MOUNTINFO);
    await unplugStick();
    // The first things emitted are the removal: nothing was reported for the stick being there at start.
    expect(RemovableMediaFields.parse((await events.next()).fields).Action).toBe('unmount');
    expect(RemovableMediaFields.parse((await events.next()).fields).Action).toBe('detach');
    expect(events.seen).toHaveLength(2);
  });

  it('is unavailable, with a reason said once in the log, where there is no sysfs block directory', async () => {
    await mkdir(sysRoot, { recursive: true });
    const lines: string[] = [];
    const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
    const events = recorder();
    sensor = createMediaSensor({ sysRoot, mountInfoPath, intervalMs: INTERVAL_MS, logger });
    await sensor.start(events.emit);
    await sensor.start(events.emit);

    const health = sensor.health();
    expect(health).toMatchObject({ name: 'media', state: 'unavailable', source: join(sysRoot, 'block') });
    expect(health.reason).toContain(join(sysRoot, 'block'));
    expect(health.counters['scans']).toBe(0);
    expect(sensor.snapshot()).toEqual([]);
    const said = lines.map((line) => JSON.parse(line) as { msg: string }).filter((entry) => entry.msg === 'media sensor unavailable');
    expect(said).toHaveLength(1);
  });

  it('skips and counts unreadable and garbage entries, and still reports the rest', async () => {
    await makeBaseSysfs();
    const sdc = `${USB_DEVICE.replace('2-1', '2-2')}/2-2:1.0/host7/target7:0:0/7:0:0:0/block/sdc`;
    // sdc's `size` is a directory: reading it fails (EISDIR) whoever runs the test, root included.
    await mkdir(join(sysRoot, sdc, 'size'), { recursive: true });
    await linkBlock('sdc', sdc);
    // sdd points nowhere, as an entry does while its device is being removed.
    await linkBlock('sdd', 'devices/pci0000:00/0000:00:14.0/usb2/2-9/gone/block/sdd');
    await writeAtomic(mountInfoPath, `${BASE_MOUNTINFO}this is not a mountinfo line\n`);

    const events = recorder();
    sensor = createMediaSensor({ sysRoot, mountInfoPath, intervalMs: INTERVAL_MS, logger: silentLogger() });
    await sensor.start(events.emit);

    await plugStick({ [`${SDB}/size`]: 'garbage\n' });
    // Size unknown is still a stick: it is reported, without SizeBytes.
    expectValid(await events.next(), { Action: 'attach', Device: '/dev/sdb', ...STICK });

    const { state, counters } = sensor.health();
    expect(state).toBe('ok');
    expect(counters['readErrors']).toBeGreaterThanOrEqual(2);
    expect(counters['malformed']).toBeGreaterThanOrEqual(1);
    expect(counters['mountinfoMalformed']).toBeGreaterThanOrEqual(1);
    expect(counters['scanErrors']).toBe(0);
    expect(sensor.snapshot().map((device) => device.device)).toEqual(['/dev/sdb']);
    expect(events.seen).toHaveLength(1);
  });
});
