// Pure half of the removable media sensor: mountinfo, sysfs uevent and block-device attributes in,
// media records and `removable_media` observations out. Total: bad input is skipped and reported, never thrown.
import { MAX_FIELD_STRING_CHARS, MAX_NAME_CHARS, type RemovableMedia } from '../../../collector/protocol/index.ts';
import type { Observation } from '../types.ts';

// ---------------------------------------------------------------------------------------------
// /proc/self/mountinfo

/** One line of `/proc/PID/mountinfo` (proc(5)), with the kernel's octal escapes undone. */
export interface MountEntry {
  mountId: number;
  parentId: number;
  /** `major:minor` of the device the filesystem lives on (`8:17`); `0:N` for filesystems without one. */
  majorMinor: string;
  /** The directory of the filesystem that forms the root of this mount (`/` unless a bind mount). */
  root: string;
  mountPoint: string;
  mountOptions: string;
  /** `shared:N`, `master:N`, … ; empty when there are none. */
  optionalFields: string[];
  fileSystem: string;
  /** Filesystem-specific source: `/dev/sdb1`, `tmpfs`, `server:/export`. */
  source: string;
  superOptions: string;
}

export type MountInfoProblem = 'too_few_fields' | 'no_separator' | 'bad_number' | 'bad_device_number';

export interface MountInfo {
  mounts: MountEntry[];
  /** Lines that could not be read, 1-based, with why; every other line is in `mounts`. */
  malformed: Array<{ line: number; problem: MountInfoProblem }>;
}

const OCTAL_ESCAPE = /\\([0-7]{3})/g;
const UNSIGNED = /^\d+$/;
const MAJOR_MINOR = /^\d+:\d+$/;

/** Undoes the kernel's `\ooo` escapes (space `\040`, tab `\011`, newline `\012`, backslash `\134`). */
export function unescapeMountField(field: string): string {
  return field.replace(OCTAL_ESCAPE, (_match, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
}

export function parseMountInfo(text: string): MountInfo {
  const mounts: MountEntry[] = [];
  const malformed: MountInfo['malformed'] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? '').trimEnd();
    if (line === '') continue;
    const result = parseMountInfoLine(line);
    if (typeof result === 'string') malformed.push({ line: i + 1, problem: result });
    else mounts.push(result);
  }
  return { mounts, malformed };
}

function parseMountInfoLine(line: string): MountEntry | MountInfoProblem {
  // Spaces inside fields are escaped by the kernel, so a plain split is exact.
  const tokens = line.split(' ').filter((token) => token !== '');
  if (tokens.length < 6) return 'too_few_fields';
  // Optional fields start at index 6 and are never a lone `-`; the separator ends them.
  const separator = tokens.indexOf('-', 6);
  if (separator < 0) return 'no_separator';
  const [id, parent, majorMinor, root, mountPoint, mountOptions] = tokens;
  const fileSystem = tokens[separator + 1];
  const source = tokens[separator + 2];
  if (
    id === undefined || parent === undefined || majorMinor === undefined || root === undefined
    || mountPoint === undefined || mountOptions === undefined || fileSystem === undefined || source === undefined
  ) {
    return 'too_few_fields';
  }
  if (!UNSIGNED.test(id) || !UNSIGNED.test(parent)) return 'bad_number';
  if (!MAJOR_MINOR.test(majorMinor)) return 'bad_device_number';
  return {
    mountId: Number(id),
    parentId: Number(parent),
    majorMinor,
    root: unescapeMountField(root),
    mountPoint: unescapeMountField(mountPoint),
    mountOptions,
    optionalFields: tokens.slice(6, separator),
    fileSystem: unescapeMountField(fileSystem),
    source: unescapeMountField(source),
    superOptions: tokens[separator + 3] ?? '',
  };
}

// ---------------------------------------------------------------------------------------------
// sysfs uevent

export interface Uevent {
  values: Record<string, string>;
  /** Non-empty lines that are not `KEY=VALUE`. */
  malformed: number;
}

const UEVENT_KEY = /^[A-Za-z0-9_]+$/;

/** Parses the `KEY=VALUE` lines of a sysfs `uevent` file (`MAJOR=8`, `DEVNAME=sdb1`, `DEVTYPE=partition`). */
export function parseUevent(text: string): Uevent {
  const entries: Array<[string, string]> = [];
  let malformed = 0;
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (line === '') continue;
    const eq = line.indexOf('=');
    const key = eq > 0 ? line.slice(0, eq) : '';
    if (!UEVENT_KEY.test(key)) {
      malformed++;
      continue;
    }
    entries.push([key, line.slice(eq + 1)]);
  }
  // fromEntries defines own properties, so a key like `__proto__` cannot reach the prototype.
  return { values: Object.fromEntries(entries), malformed };
}

// ---------------------------------------------------------------------------------------------
// Block devices

/**
 * The raw strings read for one entry of `/sys/block`, exactly as read (padding, newlines and all).
 * A field is absent when its file does not exist or could not be read.
 */
export interface RawBlockDevice {
  /** Name in `/sys/block` (`sdb`). */
  name: string;
  /** The resolved `/sys/block/<name>` link (`/sys/devices/pci0000:00/…/usb2/2-1/…/block/sdb`). */
  target?: string;
  /** `removable`: `1` when the medium can be taken out of the drive (card readers, most sticks). */
  removable?: string;
  /** `size`, in 512-byte sectors whatever the device's block size. */
  size?: string;
  uevent?: string;
  /** SCSI inquiry strings from `device/vendor` and `device/model`, space-padded to 8 and 16 chars. */
  vendor?: string;
  model?: string;
  /** From the USB device directory (the ancestor holding `idVendor`). */
  idVendor?: string;
  idProduct?: string;
  serial?: string;
  manufacturer?: string;
  product?: string;
  partitions?: RawPartition[];
}

export interface RawPartition {
  /** Directory name under the disk (`sdb1`). */
  name: string;
  size?: string;
  uevent?: string;
}

export interface MediaPartition {
  /** `/dev/sdb1` */
  device: string;
  majorMinor?: string;
  sizeBytes?: number;
}

/** A USB block device as the sensor reports it; the same record `snapshot()` returns. */
export interface MediaDevice {
  /** `/dev/sdb` */
  device: string;
  majorMinor?: string;
  /** The kernel's `removable` flag; many USB disks and some sticks say false, and are still USB storage. */
  removable?: boolean;
  /** SCSI vendor, or the USB manufacturer string when the SCSI one is blank. */
  vendor?: string;
  /** SCSI model, or the USB product string when the SCSI one is blank. */
  model?: string;
  /** The USB serial number: what identifies this stick among others of its model. */
  serial?: string;
  /** 0 for a drive without a medium (an empty card-reader slot); absent when unreadable. */
  sizeBytes?: number;
  usb?: { idVendor: string; idProduct: string; manufacturer?: string; product?: string };
  partitions: MediaPartition[];
}

export type BlockSkipReason = 'virtual' | 'not_usb' | 'no_target';

export type MediaDeviceResult =
  | {
    kind: 'media';
    device: MediaDevice;
    /** Fields present but not parseable (`size`, `idVendor`, …); the record leaves them out. */
    malformed: string[];
  }
  | { kind: 'skip'; reason: BlockSkipReason };

const SECTOR_BYTES = 512;
const USB_ID = /^[0-9a-f]{4}$/i;

/**
 * Where a `/sys/block` link points decides what it is: `/devices/virtual/` holds loop, zram, dm and
 * md devices; a USB device sits below a host controller's root hub directory `usbN`.
 */
export function classifyBlockTarget(target: string): 'virtual' | 'usb' | 'other' {
  if (target.includes('/devices/virtual/')) return 'virtual';
  return target.split('/').some((segment) => /^usb\d+$/.test(segment)) ? 'usb' : 'other';
}

/**
 * Decides whether one block device is USB mass storage and builds its record. Any block device
 * whose sysfs path runs through USB counts, whatever its `removable` flag: USB hard disks and many
 * sticks report 0, and they carry data off the plant just as well.
 */
export function buildMediaDevice(raw: RawBlockDevice): MediaDeviceResult {
  if (raw.target === undefined || raw.target === '') return { kind: 'skip', reason: 'no_target' };
  const bus = classifyBlockTarget(raw.target);
  if (bus === 'virtual') return { kind: 'skip', reason: 'virtual' };
  if (bus === 'other') return { kind: 'skip', reason: 'not_usb' };

  const malformed: string[] = [];
  const node = nodeOf(raw.name, raw.uevent);
  const device: Omit<MediaDevice, 'partitions'> = { device: node.device };
  if (node.majorMinor !== undefined) device.majorMinor = node.majorMinor;

  const removable = raw.removable?.trim();
  if (removable === '1' || removable === '0') device.removable = removable === '1';
  else if (removable !== undefined) malformed.push('removable');

  const vendor = clean(raw.vendor) ?? clean(raw.manufacturer);
  const model = clean(raw.model) ?? clean(raw.product);
  const serial = clean(raw.serial);
  if (vendor !== undefined) device.vendor = vendor;
  if (model !== undefined) device.model = model;
  if (serial !== undefined) device.serial = serial;

  const sizeBytes = sectorsToBytes(raw.size);
  if (typeof sizeBytes === 'number') device.sizeBytes = sizeBytes;
  else if (sizeBytes === 'malformed') malformed.push('size');

  const idVendor = raw.idVendor?.trim();
  const idProduct = raw.idProduct?.trim();
  if (idVendor !== undefined && idProduct !== undefined && USB_ID.test(idVendor) && USB_ID.test(idProduct)) {
    device.usb = { idVendor: idVendor.toLowerCase(), idProduct: idProduct.toLowerCase() };
    const manufacturer = clean(raw.manufacturer);
    const product = clean(raw.product);
    if (manufacturer !== undefined) device.usb.manufacturer = manufacturer;
    if (product !== undefined) device.usb.product = product;
  } else {
    if (idVendor !== undefined && !USB_ID.test(idVendor)) malformed.push('idVendor');
    if (idProduct !== undefined && !USB_ID.test(idProduct)) malformed.push('idProduct');
  }

  const partitions: MediaPartition[] = [];
  const rawPartitions = [...(raw.partitions ?? [])].sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }));
  for (const rawPartition of rawPartitions) {
    const partNode = nodeOf(rawPartition.name, rawPartition.uevent);
    const partition: MediaPartition = { device: partNode.device };
    if (partNode.majorMinor !== undefined) partition.majorMinor = partNode.majorMinor;
    const partBytes = sectorsToBytes(rawPartition.size);
    if (typeof partBytes === 'number') partition.sizeBytes = partBytes;
    else if (partBytes === 'malformed') malformed.push(`${rawPartition.name}/size`);
    partitions.push(partition);
  }
  return { kind: 'media', device: { ...device, partitions }, malformed };
}

/** The `/dev` node and device number, from `uevent` when it has them, else from the sysfs name. */
function nodeOf(name: string, uevent: string | undefined): { device: string; majorMinor?: string } {
  const values = uevent === undefined ? {} : parseUevent(uevent).values;
  const devname = values['DEVNAME'];
  // sysfs spells `/` in device names as `!` (cciss!c0d0 is /dev/cciss/c0d0).
  const relative = devname !== undefined && devname !== '' && !devname.split('/').includes('..')
    ? devname
    : name.replaceAll('!', '/');
  const result: { device: string; majorMinor?: string } = { device: clip(`/dev/${relative}`, MAX_NAME_CHARS) };
  const major = values['MAJOR'];
  const minor = values['MINOR'];
  if (major !== undefined && minor !== undefined && UNSIGNED.test(major) && UNSIGNED.test(minor)) {
    result.majorMinor = `${major}:${minor}`;
  }
  return result;
}

function sectorsToBytes(size: string | undefined): number | 'malformed' | undefined {
  if (size === undefined) return undefined;
  const trimmed = size.trim();
  if (!UNSIGNED.test(trimmed)) return 'malformed';
  const bytes = Number(trimmed) * SECTOR_BYTES;
  return Number.isSafeInteger(bytes) ? bytes : 'malformed';
}

/** sysfs strings come space-padded and newline-terminated; blank means absent. */
function clean(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === '' ? undefined : clip(trimmed, MAX_NAME_CHARS);
}

function clip(value: string, max: number): string {
  return value.length > max ? value.slice(0, max) : value;
}

// ---------------------------------------------------------------------------------------------
// Changes between two scans

/** A filesystem of a USB device mounted somewhere. */
export interface MediaMount {
  /** The mounted node: a partition (`/dev/sdb1`) or the whole disk when it has no partition table. */
  device: string;
  /** The disk it belongs to (`/dev/sdb`). */
  disk: string;
  sizeBytes?: number;
  mountPoint: string;
  fileSystem: string;
}

/** What one scan saw; the sensor keeps the last one to diff the next against. */
export interface MediaState {
  devices: MediaDevice[];
  mounts: MediaMount[];
}

export const EMPTY_MEDIA_STATE: MediaState = Object.freeze({ devices: [], mounts: [] }) as MediaState;

export interface MediaDiff {
  /** In order: unmounts, detaches, attaches, mounts; each group sorted by device, then mount point. */
  observations: Array<Observation<'removable_media'>>;
  /** The state to diff the next scan against. */
  state: MediaState;
}

/** A drive holds a medium unless it says its size is 0 (an empty card-reader slot). */
function hasMedium(device: MediaDevice): boolean {
  return device.sizeBytes !== 0;
}

/** Two records are the same medium when everything that identifies it agrees, not only `/dev/sdb`. */
function mediumKey(device: MediaDevice): string {
  return JSON.stringify([
    device.device, device.serial, device.vendor, device.model, device.sizeBytes, device.usb?.idVendor, device.usb?.idProduct,
  ]);
}

/** The mounts in `mounts` that are of a device (or one of its partitions) that holds a medium. */
export function mediaMounts(devices: readonly MediaDevice[], mounts: readonly MountEntry[]): MediaMount[] {
  interface Node { device: string; disk: string; sizeBytes?: number }
  const byNumber = new Map<string, Node>();
  const byPath = new Map<string, Node>();
  for (const disk of devices) {
    if (!hasMedium(disk)) continue;
    const nodes = [
      { device: disk.device, majorMinor: disk.majorMinor, sizeBytes: disk.sizeBytes },
      ...disk.partitions,
    ];
    for (const node of nodes) {
      const entry: Node = { device: node.device, disk: disk.device };
      if (node.sizeBytes !== undefined) entry.sizeBytes = node.sizeBytes;
      if (node.majorMinor !== undefined) byNumber.set(node.majorMinor, entry);
      byPath.set(node.device, entry);
    }
  }
  const found = new Map<string, MediaMount>();
  for (const mount of mounts) {
    // The device number is exact; the source path is the fallback for filesystems that report an
    // anonymous number (btrfs shows 0:N).
    const node = byNumber.get(mount.majorMinor) ?? byPath.get(mount.source);
    if (node === undefined) continue;
    const mediaMount: MediaMount = { ...node, mountPoint: mount.mountPoint, fileSystem: mount.fileSystem };
    found.set(`${node.device}\n${mount.mountPoint}`, mediaMount);
  }
  return [...found.values()];
}

/**
 * The `removable_media` observations between the last state and this scan, and the new state.
 * `timeMs` is when the scan ran: polling cannot tell when within the interval a change happened.
 * Mounts are tracked only for media present now, so a stick pulled out while mounted is reported
 * unmounted, then detached (the kernel may keep a stale mount until `umount`; nothing on it is reachable).
 */
export function diffMedia(
  prev: MediaState,
  next: readonly MediaDevice[],
  mounts: readonly MountEntry[],
  timeMs: number,
): MediaDiff {
  const nextMounts = mediaMounts(next, mounts);
  const prevByKey = keyDevices(prev.devices);
  const nextByKey = keyDevices(next);
  const prevDisks = new Map(prev.devices.map((device) => [device.device, device]));
  const nextDisks = new Map(next.map((device) => [device.device, device]));
  const prevMountKeys = keyMounts(prev.mounts, prevDisks);
  const nextMountKeys = keyMounts(nextMounts, nextDisks);

  const observations: Array<Observation<'removable_media'>> = [];
  const observe = (action: RemovableMedia['Action'], disk: MediaDevice, mount?: MediaMount): void => {
    observations.push({ category: 'removable_media', timeMs, fields: fieldsOf(action, disk, mount) });
  };

  for (const [key, { mount, disk }] of sortedMounts(prevMountKeys)) {
    if (!nextMountKeys.has(key)) observe('unmount', disk, mount);
  }
  for (const [key, disk] of sortedDevices(prevByKey)) {
    if (!nextByKey.has(key)) observe('detach', disk);
  }
  for (const [key, disk] of sortedDevices(nextByKey)) {
    if (!prevByKey.has(key)) observe('attach', disk);
  }
  for (const [key, { mount, disk }] of sortedMounts(nextMountKeys)) {
    if (!prevMountKeys.has(key)) observe('mount', disk, mount);
  }
  return { observations, state: { devices: [...next], mounts: nextMounts } };
}

function keyDevices(devices: readonly MediaDevice[]): Map<string, MediaDevice> {
  return new Map(devices.filter(hasMedium).map((device) => [mediumKey(device), device]));
}

function keyMounts(
  mounts: readonly MediaMount[],
  disks: ReadonlyMap<string, MediaDevice>,
): Map<string, { mount: MediaMount; disk: MediaDevice }> {
  const keyed = new Map<string, { mount: MediaMount; disk: MediaDevice }>();
  for (const mount of mounts) {
    const disk = disks.get(mount.disk);
    if (disk === undefined) continue;
    // Keyed by the medium too: a different stick mounted at the same place is a new mount.
    keyed.set(JSON.stringify([mediumKey(disk), mount.device, mount.mountPoint]), { mount, disk });
  }
  return keyed;
}

function sortedDevices(devices: Map<string, MediaDevice>): Array<[string, MediaDevice]> {
  return [...devices].sort(([, a], [, b]) => compare(a.device, b.device));
}

function sortedMounts(
  mounts: Map<string, { mount: MediaMount; disk: MediaDevice }>,
): Array<[string, { mount: MediaMount; disk: MediaDevice }]> {
  return [...mounts].sort(([, a], [, b]) =>
    compare(a.mount.device, b.mount.device) || compare(a.mount.mountPoint, b.mount.mountPoint));
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function fieldsOf(action: RemovableMedia['Action'], disk: MediaDevice, mount?: MediaMount): RemovableMedia {
  const fields: RemovableMedia = { Action: action, Device: mount?.device ?? disk.device };
  if (disk.vendor !== undefined) fields.Vendor = disk.vendor;
  if (disk.model !== undefined) fields.Model = disk.model;
  if (disk.serial !== undefined) fields.Serial = disk.serial;
  const sizeBytes = mount === undefined ? disk.sizeBytes : mount.sizeBytes;
  if (sizeBytes !== undefined) fields.SizeBytes = sizeBytes;
  if (mount !== undefined) {
    fields.MountPoint = clip(mount.mountPoint, MAX_FIELD_STRING_CHARS);
    fields.FileSystem = clip(mount.fileSystem, MAX_NAME_CHARS);
  }
  return fields;
}
