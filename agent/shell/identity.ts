// Who is on the other end of the shell socket, as the kernel knows it, never as the client says.
//
// Node has no SO_PEERCRED, so the daemon asks the client to prove its uid through the file system: it
// names a fresh random file in a root-owned directory of mode 1733 (anyone may create, nobody but root
// may list or remove others' files), the client creates that file, and the kernel stamps it with the
// client's uid. The daemon then checks the file is a plain file with one link (not a hard link to
// someone else's file, which protected_hardlinks forbids anyway), that it holds the secret the daemon
// sent, and takes its owner as the identity. A file someone else made and the client renamed in would
// need to be writable by the client to hold the secret: it is refused if anyone but its owner may
// access it (mode & 077), or if it was born before the challenge was issued (statx birth time).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync, closeSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, rmSync, writeSync, constants as fsConstants,
} from 'node:fs';
import { join } from 'node:path';

export interface Challenge {
  /** The file the client must create, and what it must write in it. */
  path: string;
  secret: string;
  /** When it was issued (ms since the epoch): the file must be born after. */
  issuedAt: number;
}

export class IdentityError extends Error {}

/** Creates (or fixes) the challenge directory: root's, mode 1733, emptied of what earlier runs left. */
export function prepareChallengeDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o1733 });
  chmodSync(dir, 0o1733);
  for (const name of readdirSync(dir)) removeAnswer(join(dir, name));
}

export function newChallenge(dir: string): Challenge {
  return { path: join(dir, randomBytes(16).toString('hex')), secret: randomBytes(16).toString('hex'), issuedAt: Date.now() };
}

/** Removes what a client made at a challenge's path (a file, or whatever it put there instead); never throws. */
export function removeAnswer(path: string): void {
  try {
    rmSync(path, { force: true, recursive: true });
  } catch {
    // Left for the next start's sweep.
  }
}

/** The client's side: create the named file, exclusively, with the secret in it. */
export function answerChallenge(challenge: Pick<Challenge, 'path' | 'secret'>): void {
  const fd = openSync(challenge.path, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, 0o600);
  try {
    const buffer = Buffer.from(challenge.secret);
    let written = 0;
    while (written < buffer.length) written += writeSync(fd, buffer.subarray(written));
  } finally {
    closeSync(fd);
  }
}

/** The daemon's side: the uid that created the file; the file is removed whatever the outcome. */
export function checkChallenge(challenge: Challenge): number {
  let fd: number;
  try {
    fd = openSync(challenge.path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
  } catch (error) {
    removeAnswer(challenge.path);
    throw new IdentityError(`identity not proven: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message} on the challenge file`);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new IdentityError('identity not proven: the challenge is not a plain file');
    if (stat.nlink !== 1) throw new IdentityError('identity not proven: the challenge file has other links');
    if ((stat.mode & 0o077) !== 0) throw new IdentityError('identity not proven: the challenge file may be read or written by others than its owner');
    // A file born before the challenge was renamed in from elsewhere (0: the file system keeps no birth time).
    if (stat.birthtimeMs > 0 && stat.birthtimeMs < challenge.issuedAt - 1_000) throw new IdentityError('identity not proven: the challenge file is older than the challenge');
    const content = Buffer.alloc(64);
    const length = readSync(fd, content, 0, content.length, 0);
    if (content.subarray(0, length).toString() !== challenge.secret) throw new IdentityError('identity not proven: the challenge file does not hold the secret');
    return stat.uid;
  } finally {
    closeSync(fd);
    removeAnswer(challenge.path);
  }
}

export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

/** The account of a uid, from the name service (getent: files, LDAP, SSSD …), else /etc/passwd. */
export function lookupUser(uid: number): PasswdEntry {
  let line: string | undefined;
  try {
    line = execFileSync('getent', ['passwd', String(uid)], { encoding: 'utf8', timeout: 5_000, stdio: ['ignore', 'pipe', 'ignore'] }).split('\n')[0];
  } catch {
    line = readFileSync('/etc/passwd', 'utf8').split('\n').find((entry) => entry.split(':')[2] === String(uid));
  }
  const parts = line?.split(':') ?? [];
  if (parts.length < 7 || Number(parts[2]) !== uid) throw new IdentityError(`uid ${uid} has no account`);
  return { name: parts[0]!, uid, gid: Number(parts[3]), home: parts[5] || '/', shell: parts[6] || '/bin/sh' };
}
