// This host's identity in events: a stable id and a display name. The id is derived from the OS
// machine id with an app-specific hash (as systemd advises), so the raw machine id never leaves the host.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Host, Product } from '../collector/protocol/index.ts';

const MACHINE_ID_FILES = ['/etc/machine-id', '/var/lib/dbus/machine-id'];

export interface HostIdentity extends Host {
  /** Where the id came from, for `snapshot`. */
  idSource: string;
}

export function hostIdentity(name?: string, machineIdFiles = MACHINE_ID_FILES): HostIdentity {
  const displayName = name ?? hostname();
  for (const file of machineIdFiles) {
    let machineId: string;
    try {
      machineId = readFileSync(file, 'utf8').trim();
    } catch {
      continue;
    }
    if (/^[0-9a-f]{32}$/.test(machineId)) return { id: appSpecificId(machineId), name: displayName, idSource: file };
  }
  return { id: appSpecificId(`hostname:${hostname()}`), name: displayName, idSource: 'host name (no machine id file)' };
}

function appSpecificId(secret: string): string {
  return createHash('sha256').update(`omwatch\0${secret}`).digest('hex').slice(0, 32);
}

export function currentProduct(): Product {
  return process.platform === 'win32' ? 'windows' : 'linux';
}
