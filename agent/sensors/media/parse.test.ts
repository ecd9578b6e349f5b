// Golden fixtures for the media parsers (fixtures/input/* → fixtures/output/*.json), and diffMedia.
// To accept new outputs after a deliberate change: OMWATCH_UPDATE_FIXTURES=1 npx vitest run agent/sensors/media
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { RemovableMediaFields } from '../../../collector/protocol/index.ts';
import { goldenFixtures } from '../../../test/helpers/golden.ts';
import {
  buildMediaDevice,
  diffMedia,
  EMPTY_MEDIA_STATE,
  parseMountInfo,
  parseUevent,
  type MediaDevice,
  type MountEntry,
  type RawBlockDevice,
} from './parse.ts';

const fixtures = new URL('./fixtures/', import.meta.url);

/** Which parser reads an input, by how its name ends (outputs are named after the input less `.txt`). */
const GOLDEN: Array<[match: RegExp, parse: (path: string) => unknown]> = [
  [/\.device\.json$/, (path) => buildMediaDevice(JSON.parse(readFileSync(path, 'utf8')) as RawBlockDevice)],
  [/\.mountinfo\.txt$/, (path) => parseMountInfo(readFileSync(path, 'utf8'))],
  [/\.uevent\.txt$/, (path) => parseUevent(readFileSync(path, 'utf8'))],
];
for (const [match, parse] of GOLDEN) goldenFixtures({ fixtures, match, parse });

it('has a parser for every input', () => {
  const inputs = readdirSync(new URL('./input/', fixtures));
  expect(inputs.filter((file) => !GOLDEN.some(([match]) => match.test(file)))).toEqual([]);
});

describe('parsers are total', () => {
  it.each(['', '\n\n', '\\', '- - - - - - -', '1 2 3:4', '\u0000\uffff', ' '.repeat(10_000)])('survives %j', (text) => {
    expect(() => parseMountInfo(text)).not.toThrow();
    expect(() => parseUevent(text)).not.toThrow();
  });

  it('builds a record from a USB entry with nothing but a path', () => {
    expect(buildMediaDevice({ name: 'sdz', target: '/sys/devices/pci0000:00/usb1/1-1/1-1:1.0/block/sdz' }))
      .toEqual({ kind: 'media', device: { device: '/dev/sdz', partitions: [] }, malformed: [] });
  });
});

const stick: MediaDevice = {
  device: '/dev/sdb',
  majorMinor: '8:16',
  removable: true,
  vendor: 'SanDisk',
  model: 'Ultra Fit',
  serial: '4C530001230508115245',
  sizeBytes: 30_752_636_928,
  usb: { idVendor: '0781', idProduct: '5583' },
  partitions: [{ device: '/dev/sdb1', majorMinor: '8:17', sizeBytes: 30_751_588_352 }],
};

const emptyReader: MediaDevice = {
  device: '/dev/sdc',
  majorMinor: '8:32',
  removable: true,
  vendor: 'Generic-',
  model: 'SD/MMC',
  sizeBytes: 0,
  partitions: [],
};

function mountOf(majorMinor: string, source: string, mountPoint: string, fileSystem = 'vfat'): MountEntry {
  return {
    mountId: 600, parentId: 28, majorMinor, root: '/', mountPoint, mountOptions: 'rw',
    optionalFields: [], fileSystem, source, superOptions: 'rw',
  };
}

const rootfs = mountOf('259:2', '/dev/nvme0n1p2', '/', 'ext4');

describe('diffMedia', () => {
  it('reports attach then mount, then unmount then detach, with schema-valid fields', () => {
    const attached = diffMedia(EMPTY_MEDIA_STATE, [stick], [rootfs], 1000);
    const mounted = diffMedia(attached.state, [stick], [rootfs, mountOf('8:17', '/dev/sdb1', '/media/op/USB STICK')], 2000);
    const unmounted = diffMedia(mounted.state, [stick], [rootfs], 3000);
    const detached = diffMedia(unmounted.state, [], [rootfs], 4000);
    const all = [attached, mounted, unmounted, detached].flatMap((diff) => diff.observations);

    const identity = { Vendor: 'SanDisk', Model: 'Ultra Fit', Serial: '4C530001230508115245' };
    const onMount = { ...identity, Device: '/dev/sdb1', SizeBytes: 30_751_588_352, MountPoint: '/media/op/USB STICK', FileSystem: 'vfat' };
    expect(all).toEqual([
      { category: 'removable_media', timeMs: 1000, fields: { Action: 'attach', Device: '/dev/sdb', SizeBytes: 30_752_636_928, ...identity } },
      { category: 'removable_media', timeMs: 2000, fields: { Action: 'mount', ...onMount } },
      { category: 'removable_media', timeMs: 3000, fields: { Action: 'unmount', ...onMount } },
      { category: 'removable_media', timeMs: 4000, fields: { Action: 'detach', Device: '/dev/sdb', SizeBytes: 30_752_636_928, ...identity } },
    ]);
    for (const observation of all) expect(RemovableMediaFields.parse(observation.fields)).toEqual(observation.fields);
  });

  it('reports nothing when nothing changed', () => {
    const mounts = [rootfs, mountOf('8:17', '/dev/sdb1', '/media/op/USB STICK')];
    const first = diffMedia(EMPTY_MEDIA_STATE, [stick], mounts, 1000);
    expect(diffMedia(first.state, [structuredClone(stick)], mounts, 2000).observations).toEqual([]);
  });

  it('reports a stick pulled out while mounted as unmount then detach, in one scan', () => {
    const first = diffMedia(EMPTY_MEDIA_STATE, [stick], [mountOf('8:17', '/dev/sdb1', '/media/x')], 1000);
    // The kernel keeps the stale mount; the device is gone.
    const pulled = diffMedia(first.state, [], [mountOf('8:17', '/dev/sdb1', '/media/x')], 2000);
    expect(pulled.observations.map((o) => [o.fields.Action, o.fields.Device])).toEqual([['unmount', '/dev/sdb1'], ['detach', '/dev/sdb']]);
  });

  it('treats an empty card-reader slot as no medium, and a card put in as an attach', () => {
    const empty = diffMedia(EMPTY_MEDIA_STATE, [emptyReader], [], 1000);
    expect(empty.observations).toEqual([]);
    const card = { ...emptyReader, sizeBytes: 31_914_983_424 };
    const inserted = diffMedia(empty.state, [card], [], 2000);
    expect(inserted.observations.map((o) => o.fields)).toEqual([
      { Action: 'attach', Device: '/dev/sdc', Vendor: 'Generic-', Model: 'SD/MMC', SizeBytes: 31_914_983_424 },
    ]);
    expect(diffMedia(inserted.state, [emptyReader], [], 3000).observations.map((o) => o.fields.Action)).toEqual(['detach']);
  });

  it('sees a different stick at the same /dev name, mounted at the same place, as a new medium', () => {
    const mounts = [mountOf('8:17', '/dev/sdb1', '/media/usb')];
    const first = diffMedia(EMPTY_MEDIA_STATE, [stick], mounts, 1000);
    const other = { ...stick, serial: 'OTHER' };
    const swapped = diffMedia(first.state, [other], mounts, 2000);
    expect(swapped.observations.map((o) => [o.fields.Action, o.fields.Serial])).toEqual([
      ['unmount', '4C530001230508115245'], ['detach', '4C530001230508115245'], ['attach', 'OTHER'], ['mount', 'OTHER'],
    ]);
  });

  it('matches a mount by its source when the device number is anonymous (btrfs)', () => {
    const first = diffMedia(EMPTY_MEDIA_STATE, [stick], [], 1000);
    const mounted = diffMedia(first.state, [stick], [mountOf('0:45', '/dev/sdb1', '/mnt/btrfs', 'btrfs')], 2000);
    expect(mounted.observations.map((o) => [o.fields.Action, o.fields.Device, o.fields.FileSystem]))
      .toEqual([['mount', '/dev/sdb1', 'btrfs']]);
  });

  it('reports a whole-disk filesystem and each mount point of a partition', () => {
    const bare = { ...stick, partitions: [] };
    const first = diffMedia(EMPTY_MEDIA_STATE, [bare], [], 1000);
    const mounted = diffMedia(first.state, [bare], [
      mountOf('8:16', '/dev/sdb', '/media/b'),
      mountOf('8:16', '/dev/sdb', '/media/a'),
    ], 2000);
    expect(mounted.observations.map((o) => [o.fields.Device, o.fields.MountPoint])).toEqual([['/dev/sdb', '/media/a'], ['/dev/sdb', '/media/b']]);
  });
});
