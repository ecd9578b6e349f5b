// A stable id for one process on one host, after Sysmon's ProcessGuid: the same process gets the
// same id in every scan and after an agent restart; a new process on a reused pid gets another.
import { createHash } from 'node:crypto';

export function processGuid(hostId: string, pid: number, startTimeMs: number): string {
  const hex = createHash('sha256').update(`${hostId}\0${pid}\0${startTimeMs}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}
