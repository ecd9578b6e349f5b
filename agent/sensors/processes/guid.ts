// A stable id for one process on one host, after Sysmon's ProcessGuid: the same process gets the
// same id in every scan and after an agent restart; a new process on a reused pid gets another.
import { hash } from 'node:crypto';

export function processGuid(hostId: string, pid: number, startTimeMs: number): string {
  // One-shot: a process event path hashes once per process, and a Hash object per call costs more.
  const hex = hash('sha256', `${hostId}\0${pid}\0${startTimeMs}`, 'hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}
