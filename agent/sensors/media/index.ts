// The removable media sensor: polls sysfs block devices and mountinfo and reports USB storage being
// attached, detached, mounted and unmounted as `removable_media` observations. All I/O lives here.
//
// Baseline: the first scan records what is already attached and mounted and emits nothing for it. We
// cannot say when those media arrived, and an `attach` stamped with the agent's start time would read
// as a stick plugged in at boot; what was present at start is in `snapshot()` instead.
import type { Dirent } from 'node:fs';
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from '../../log/index.ts';
import type { Emit, Sensor, SensorHealth, SensorState } from '../types.ts';
import {
  buildMediaDevice,
  classifyBlockTarget,
  diffMedia,
  EMPTY_MEDIA_STATE,
  parseMountInfo,
  type MediaDevice,
  type MediaState,
  type MountEntry,
  type RawBlockDevice,
  type RawPartition,
} from './parse.ts';

export interface MediaSensorOptions {
  /** Where sysfs is mounted; tests point it at a fake tree. */
  sysRoot?: string;
  mountInfoPath?: string;
  intervalMs?: number;
  logger: Logger;
}

export interface MediaSensor extends Sensor {
  /** The USB block devices seen by the last scan, empty card-reader slots included. */
  snapshot(): MediaDevice[];
}

/** How far up from a block device we look for its USB device directory (real depth is about 6). */
const MAX_USB_WALK = 16;

export function createMediaSensor({
  sysRoot = '/sys',
  mountInfoPath = '/proc/self/mountinfo',
  intervalMs = 1000,
  logger,
}: MediaSensorOptions): MediaSensor {
  if (!Number.isInteger(intervalMs) || intervalMs <= 0) {
    throw new RangeError(`media sensor: expected intervalMs to be a positive integer, got ${String(intervalMs)}`);
  }
  const name = 'media';
  const log = logger.child({ sensor: name });
  const blockDir = join(sysRoot, 'block');
  const counters = {
    scans: 0,
    /** USB block devices in the last scan (a gauge). */
    devices: 0,
    emitted: 0,
    readErrors: 0,
    /** sysfs values present but not parseable (a size that is not a number, …). */
    malformed: 0,
    mountinfoMalformed: 0,
    /** Scans that failed as a whole (an `emit` that threw, a bug); the next one still runs. */
    scanErrors: 0,
  };
  let state: SensorState = 'ok';
  let reason: string | undefined;
  let media: MediaState = EMPTY_MEDIA_STATE;
  let lastMounts: readonly MountEntry[] = [];
  let baselined = false;
  let realSysRoot = sysRoot;
  let emit: Emit | undefined;
  let timer: NodeJS.Timeout | undefined;
  let scanning: Promise<void> | undefined;
  /** Bumped by stop(), so a scan still running from before cannot schedule another. */
  let generation = 0;

  function setState(next: SensorState, why?: string): void {
    if (next === state && why === reason) return;
    if (next === 'ok') log.info({ source: blockDir }, 'media sensor recovered');
    else log.warn({ source: blockDir, state: next, reason: why }, 'media sensor cannot see everything');
    state = next;
    reason = why;
  }

  /** Reads one sysfs attribute; a missing optional file is no error, anything else is counted. */
  async function readAttr(path: string, required = false): Promise<string | undefined> {
    try {
      return await readFile(path, 'utf8');
    } catch (err) {
      if (required || errorCode(err) !== 'ENOENT') {
        counters.readErrors++;
        log.debug({ err, path }, 'could not read a sysfs attribute');
      }
      return undefined;
    }
  }

  async function isFile(path: string): Promise<boolean> {
    try {
      return (await stat(path)).isFile();
    } catch {
      return false;
    }
  }

  /** The nearest ancestor of the block device that is a USB device (has `idVendor`), below the root. */
  async function findUsbDir(target: string): Promise<string | undefined> {
    const devicesRoot = join(realSysRoot, 'devices');
    let dir = dirname(target);
    for (let i = 0; i < MAX_USB_WALK && dir.startsWith(devicesRoot + '/'); i++) {
      if (await isFile(join(dir, 'idVendor'))) return dir;
      dir = dirname(dir);
    }
    return undefined;
  }

  async function readPartitions(diskDir: string, disk: string): Promise<RawPartition[]> {
    let entries: Dirent[];
    try {
      entries = await readdir(diskDir, { withFileTypes: true });
    } catch (err) {
      counters.readErrors++;
      log.debug({ err, path: diskDir }, 'could not list a block device');
      return [];
    }
    const partitionName = new RegExp(`^${escapeRegExp(disk)}p?\\d+$`);
    const partitions: RawPartition[] = [];
    for (const entry of entries) {
      if (!entry.isDirectory() || !partitionName.test(entry.name)) continue;
      const dir = join(diskDir, entry.name);
      const [size, uevent] = await Promise.all([readAttr(join(dir, 'size'), true), readAttr(join(dir, 'uevent'))]);
      if (size === undefined) continue;
      const partition: RawPartition = { name: entry.name, size };
      if (uevent !== undefined) partition.uevent = uevent;
      partitions.push(partition);
    }
    return partitions;
  }

  /** The raw strings of one `/sys/block` entry; `undefined` when it is not USB, `'error'` when unreadable. */
  async function readBlockDevice(entry: string): Promise<RawBlockDevice | undefined | 'error'> {
    let target: string;
    try {
      target = await realpath(join(blockDir, entry));
    } catch (err) {
      counters.readErrors++;
      log.debug({ err, entry }, 'could not resolve a block device');
      return 'error';
    }
    // Decide on the path before reading anything: loop and disk devices cost one realpath a scan.
    if (classifyBlockTarget(target) !== 'usb') return undefined;
    const size = await readAttr(join(target, 'size'), true);
    if (size === undefined) return 'error';
    const usbDir = await findUsbDir(target);
    const [removable, uevent, vendor, model, partitions, usb] = await Promise.all([
      readAttr(join(target, 'removable')),
      readAttr(join(target, 'uevent')),
      readAttr(join(target, 'device', 'vendor')),
      readAttr(join(target, 'device', 'model')),
      readPartitions(target, entry),
      usbDir === undefined
        ? undefined
        : Promise.all(['idVendor', 'idProduct', 'serial', 'manufacturer', 'product'].map((file) => readAttr(join(usbDir, file)))),
    ]);
    const raw: RawBlockDevice = { name: entry, target, size, partitions };
    if (removable !== undefined) raw.removable = removable;
    if (uevent !== undefined) raw.uevent = uevent;
    if (vendor !== undefined) raw.vendor = vendor;
    if (model !== undefined) raw.model = model;
    if (usb !== undefined) {
      const [idVendor, idProduct, serial, manufacturer, product] = usb;
      if (idVendor !== undefined) raw.idVendor = idVendor;
      if (idProduct !== undefined) raw.idProduct = idProduct;
      if (serial !== undefined) raw.serial = serial;
      if (manufacturer !== undefined) raw.manufacturer = manufacturer;
      if (product !== undefined) raw.product = product;
    }
    return raw;
  }

  /** The USB media now present, or `undefined` when `/sys/block` itself could not be listed. */
  async function readDevices(): Promise<MediaDevice[] | undefined> {
    let entries: string[];
    try {
      entries = await readdir(blockDir);
    } catch (err) {
      counters.readErrors++;
      log.debug({ err, path: blockDir }, 'could not list block devices');
      return undefined;
    }
    const previous = new Map(media.devices.map((device) => [device.device, device]));
    const devices: MediaDevice[] = [];
    for (const entry of entries.sort()) {
      const raw = await readBlockDevice(entry);
      if (raw === undefined) continue;
      if (raw === 'error') {
        // A transient read error must not look like a detach followed by an attach: keep what we
        // knew. A device really going away is gone from the listing at the next scan.
        const known = previous.get(`/dev/${entry.replaceAll('!', '/')}`);
        if (known !== undefined) devices.push(known);
        continue;
      }
      const result = buildMediaDevice(raw);
      if (result.kind === 'skip') continue;
      if (result.malformed.length > 0) {
        counters.malformed += result.malformed.length;
        log.debug({ entry, fields: result.malformed }, 'skipped unparseable sysfs values');
      }
      devices.push(result.device);
    }
    return devices;
  }

  /** The current mounts; the last good ones when mountinfo cannot be read, so nothing looks unmounted. */
  async function readMounts(): Promise<{ mounts: readonly MountEntry[]; ok: boolean }> {
    let text: string;
    try {
      text = await readFile(mountInfoPath, 'utf8');
    } catch (err) {
      counters.readErrors++;
      log.debug({ err, path: mountInfoPath }, 'could not read mountinfo');
      return { mounts: lastMounts, ok: false };
    }
    const parsed = parseMountInfo(text);
    if (parsed.malformed.length > 0) {
      counters.mountinfoMalformed += parsed.malformed.length;
      log.debug({ path: mountInfoPath, malformed: parsed.malformed }, 'skipped malformed mountinfo lines');
    }
    lastMounts = parsed.mounts;
    return { mounts: parsed.mounts, ok: true };
  }

  async function scan(): Promise<void> {
    const [devices, mounts] = await Promise.all([readDevices(), readMounts()]);
    counters.scans++;
    if (devices === undefined) {
      setState('degraded', `cannot list ${blockDir}; media changes are not seen until it can be read`);
      return;
    }
    if (!mounts.ok) setState('degraded', `cannot read ${mountInfoPath}; mounts and unmounts are not seen`);
    else setState('ok');
    counters.devices = devices.length;
    const diff = diffMedia(media, devices, mounts.mounts, Date.now());
    media = diff.state;
    if (!baselined) {
      baselined = true;
      log.debug({ devices: devices.length, mounts: diff.state.mounts.length }, 'media baseline taken');
      return;
    }
    for (const observation of diff.observations) {
      log.debug({ fields: observation.fields }, 'removable media changed');
      emit?.(observation);
      counters.emitted++;
    }
  }

  /** One scan that cannot reject: the timer has nobody to hand an error to. */
  async function safeScan(): Promise<void> {
    try {
      await scan();
    } catch (err) {
      counters.scanErrors++;
      log.error({ err }, 'media scan failed; the next one will run');
    }
  }

  function schedule(): void {
    const scheduledIn = generation;
    timer = setTimeout(() => {
      scanning = safeScan().finally(() => {
        scanning = undefined;
        if (scheduledIn === generation && emit !== undefined) schedule();
      });
    }, intervalMs);
    // The sensor alone must not keep the process alive.
    timer.unref();
  }

  return {
    name,
    async start(sink: Emit): Promise<void> {
      if (emit !== undefined || state === 'unavailable') return;
      try {
        if (!(await stat(blockDir)).isDirectory()) throw new Error(`${blockDir} is not a directory`);
        realSysRoot = await realpath(sysRoot);
      } catch (err) {
        state = 'unavailable';
        reason = `${blockDir} not found: this host has no sysfs (Windows, or a container without /sys mounted), `
          + 'so USB storage cannot be seen; run the agent on the host or mount /sys';
        log.warn({ err, source: blockDir, reason }, 'media sensor unavailable');
        return;
      }
      emit = sink;
      const startedIn = generation;
      scanning = safeScan();
      await scanning;
      scanning = undefined;
      if (startedIn === generation) schedule();
    },
    async stop(): Promise<void> {
      generation++;
      emit = undefined;
      clearTimeout(timer);
      timer = undefined;
      await scanning;
    },
    health(): SensorHealth {
      const health: SensorHealth = { name, state, source: blockDir, counters: { ...counters } };
      if (reason !== undefined) health.reason = reason;
      return health;
    },
    snapshot(): MediaDevice[] {
      return structuredClone(media.devices);
    },
  };
}

function errorCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
