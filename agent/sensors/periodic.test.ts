import { describe, expect, it } from 'vitest';
import { periodic } from './periodic.ts';

describe('periodic', () => {
  it('keeps running after a step throws, reports each error, and stops when told', async () => {
    const errors: unknown[] = [];
    let runs = 0;
    let done: () => void = () => {};
    const third = new Promise<void>((resolve) => (done = resolve));
    const timer = periodic(() => {
      runs++;
      if (runs === 3) done();
      if (runs % 2 === 1) throw new Error(`run ${runs}`);
    }, 5, (error) => errors.push(error));
    timer.start(0);
    await third;
    timer.stop();
    const after = runs;
    // A stopped timer schedules nothing more: wait for a later timer to be sure.
    await new Promise<void>((resolve) => setTimeout(resolve, 30));
    expect(runs).toBe(after);
    expect(errors.map((e) => (e as Error).message)).toEqual(['run 1', 'run 3']);
  });

  it('runs an async step to its end before the next, and reports its rejection', async () => {
    const errors: unknown[] = [];
    let running = 0;
    let overlapped = false;
    let runs = 0;
    let done: () => void = () => {};
    const fourth = new Promise<void>((resolve) => (done = resolve));
    const timer = periodic(async () => {
      overlapped ||= running > 0;
      running++;
      runs++;
      // Longer than the interval: a timer that did not wait would start the next run meanwhile.
      await new Promise<void>((resolve) => setImmediate(() => setTimeout(resolve, 15)));
      running--;
      if (runs === 4) done();
      if (runs === 2) throw new Error('run 2');
    }, 1, (error) => errors.push(error));
    timer.start(0);
    await fourth;
    timer.stop();
    expect(overlapped).toBe(false);
    expect(errors.map((e) => (e as Error).message)).toEqual(['run 2']);
  });
});
