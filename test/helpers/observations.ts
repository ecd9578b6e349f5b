// Collects what a sensor emits and lets a test wait for a matching observation, with a deadline,
// instead of sleeping.
import type { Observation } from '../../agent/sensors/types.ts';

export interface ObservationLog {
  emit: (observation: Observation) => void;
  all: Observation[];
  /** Resolves with the first observation (already seen or yet to come) that matches. */
  waitFor: (predicate: (o: Observation) => boolean, timeoutMs?: number, what?: string) => Promise<Observation>;
}

export function observationLog(): ObservationLog {
  const all: Observation[] = [];
  const waiters: Array<{ predicate: (o: Observation) => boolean; resolve: (o: Observation) => void }> = [];
  return {
    all,
    emit(observation) {
      all.push(observation);
      for (let i = waiters.length - 1; i >= 0; i--) {
        const waiter = waiters[i]!;
        if (waiter.predicate(observation)) {
          waiters.splice(i, 1);
          waiter.resolve(observation);
        }
      }
    },
    waitFor(predicate, timeoutMs = 10_000, what = 'observation') {
      const seen = all.find(predicate);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const waiter = {
          predicate,
          resolve: (o: Observation) => {
            clearTimeout(timer);
            resolve(o);
          },
        };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; saw ${all.length} observations`));
        }, timeoutMs);
        waiters.push(waiter);
      });
    },
  };
}

/** The fields of an observation as a plain record, for assertions. */
export function fieldsOf(o: Observation): Record<string, unknown> {
  return o.fields as Record<string, unknown>;
}
