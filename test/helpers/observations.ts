// Collects what a sensor (or a child's output) emits and lets a test wait for a matching item, with a
// deadline, instead of sleeping.
import type { Observation } from '../../agent/sensors/types.ts';

export interface WaitLog<T> {
  emit: (item: T) => void;
  all: T[];
  /** Resolves with the first item (already seen or yet to come) that matches. */
  waitFor: (predicate: (item: T) => boolean, timeoutMs?: number, what?: string) => Promise<T>;
}

export type ObservationLog = WaitLog<Observation>;

/** A log of items, any of which a test can wait for, with a deadline. */
export function waitLog<T>(): WaitLog<T> {
  const all: T[] = [];
  const waiters: Array<{ predicate: (item: T) => boolean; resolve: (item: T) => void }> = [];
  return {
    all,
    emit(item) {
      all.push(item);
      for (let i = waiters.length - 1; i >= 0; i--) {
        const waiter = waiters[i]!;
        if (waiter.predicate(item)) {
          waiters.splice(i, 1);
          waiter.resolve(item);
        }
      }
    },
    waitFor(predicate, timeoutMs = 10_000, what = 'an item') {
      const seen = all.find(predicate);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const waiter = {
          predicate,
          resolve: (item: T) => {
            clearTimeout(timer);
            resolve(item);
          },
        };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; saw ${all.length} items`));
        }, timeoutMs);
        waiters.push(waiter);
      });
    },
  };
}

export function observationLog(): ObservationLog {
  return waitLog<Observation>();
}

/** The fields of an observation as a plain record, for assertions. */
export function fieldsOf(o: Observation): Record<string, unknown> {
  return o.fields as Record<string, unknown>;
}
