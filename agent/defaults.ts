// Where the agent keeps things by default, and its version: what the command line names without
// loading the parts that use them.
import { join } from 'node:path';

export const AGENT_VERSION = '0.1.0';
export const DEFAULT_DATA_DIR = '/var/lib/omwatch';
export const DEFAULT_SHELL_SOCKET = '/run/omwatch/shell.sock';
export const DEFAULT_SPOOL_DIR = '/var/spool/omwatch';
export const DEFAULT_POLICY = '/etc/omwatch/policy.yml';

/** Where the daemon listens for recorded shells and where the shell looks: one rule for both sides. */
export function shellSocketPath(dataDir: string | undefined, socket: string | undefined): string {
  return socket ?? (dataDir ? join(dataDir, 'shell.sock') : DEFAULT_SHELL_SOCKET);
}

/** Where shells spool sessions while the daemon is down: one rule for both sides. */
export function spoolDirPath(dataDir: string | undefined): string {
  return dataDir ? join(dataDir, 'spool') : DEFAULT_SPOOL_DIR;
}
