// For the connector tests: records packed exactly as native/proc-connector/src/proc_connector.c packs
// them (little-endian), and a stand-in addon module that hands a test's batches to the sensor. The
// stand-in is for what the kernel cannot be made to do on cue: deliver a batch cut at a given moment.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BLOBS, HEADER_BYTES } from './connector-decode.ts';

export const KIND = { fork: 1, exec: 2, uid: 3, exit: 4, overflow: 5, dropped: 6, error: 7, relisten: 8, sid: 9, cut: 10 } as const;

export interface PackedFields {
  flags?: number;
  timeMs?: number;
  pid?: number;
  parent?: number;
  a?: number;
  b?: number;
  bootMs?: number;
  blobs?: Partial<Record<(typeof BLOBS)[number], string>>;
}

/** One record as the addon packs it. */
export function packRecord(kind: number, fields: PackedFields): Buffer {
  const blobs = BLOBS.map((name) => fields.blobs?.[name]);
  const payload = Buffer.concat(blobs.map((blob) => Buffer.from(blob ?? '', 'utf8')));
  const size = Math.ceil((HEADER_BYTES + payload.length) / 8) * 8;
  const out = Buffer.alloc(size);
  out.writeUInt32LE(size, 0);
  out[4] = kind;
  out[5] = fields.flags ?? 0;
  out.writeUInt16LE(blobs.reduce((mask, blob, i) => (blob === undefined ? mask : mask | (1 << i)), 0), 6);
  out.writeDoubleLE(fields.timeMs ?? 0, 8);
  out.writeInt32LE(fields.pid ?? -1, 16);
  out.writeInt32LE(fields.parent ?? -1, 20);
  out.writeUInt32LE(fields.a ?? 0, 24);
  out.writeUInt32LE(fields.b ?? 0, 28);
  blobs.forEach((blob, i) => out.writeUInt32LE(Buffer.byteLength(blob ?? ''), 32 + 4 * i));
  out.writeDoubleLE(fields.bootMs ?? -1, 56);
  payload.copy(out, HEADER_BYTES);
  return out;
}

/**
 * A stand-in for the addon, as a module file the sensor loads by path (`connectorPath`): `deliver`
 * hands it a batch as the reader thread would.
 */
export function standInAddon(): { path: string; deliver(batch: Buffer): void; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'omw-stand-in-addon-'));
  const path = join(dir, 'proc_connector.cjs');
  const key = `omwStandInConnector${process.pid}${Date.now()}`;
  writeFileSync(path, `'use strict';
const stats = { messages: 0, forks: 0, execs: 0, uidChanges: 0, exits: 0, overflows: 0, dropped: 0, gone: 0, errors: 0, peakQueuedBytes: 0, splitSockets: 1, relistens: 0 };
module.exports = {
  open(options, onBatch) { globalThis[${JSON.stringify(key)}] = onBatch; return {}; },
  close() { delete globalThis[${JSON.stringify(key)}]; },
  stats() { return { ...stats }; },
};
`);
  return {
    path,
    deliver(batch) {
      const onBatch = (globalThis as Record<string, unknown>)[key] as ((batch: Buffer) => void) | undefined;
      if (!onBatch) throw new Error('the stand-in addon is not open');
      onBatch(batch);
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
