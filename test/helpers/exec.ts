// Helpers for the process capture tests: bursts of short processes, and waiting for a number of
// matching observations (never sleeping).
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import type { Observation } from '../../agent/sensors/types.ts';
import type { ObservationLog } from './observations.ts';

/** Resolves with the matching observations once there are `count` of them (already seen or to come). */
export async function collect(log: ObservationLog, predicate: (o: Observation) => boolean, count: number, timeoutMs: number, what: string): Promise<Observation[]> {
  let seen = 0;
  // waitFor tries each observation once, in order: counting inside the predicate counts each once.
  await log.waitFor((o) => predicate(o) && ++seen >= count, timeoutMs, `${count} × ${what}`).catch((error: unknown) => {
    throw new Error(`${(error as Error).message} (${seen} of them came)`);
  });
  return log.all.filter(predicate);
}

/** A shell that runs `count` short processes one after another; resolves when it has exited. */
export async function burst(count: number, command: string): Promise<ChildProcess> {
  const shell = spawn('/bin/sh', ['-c', `i=0; while [ $i -lt ${count} ]; do ${command} $i; i=$((i+1)); done`], { stdio: 'ignore' });
  await once(shell, 'exit');
  return shell;
}
