// A sensor's timer: runs a step every interval, the next only after the last one finished; a step
// that throws is reported and the timer goes on; it never holds the process open.

export interface Periodic {
  /** Schedules the first run `firstDelayMs` from now (0: at once, synchronously). */
  start(firstDelayMs?: number): void;
  stop(): void;
}

/** A step may be async (its slow reads off the event loop): the next runs only after it settles. */
export function periodic(step: () => void | Promise<void>, intervalMs: number, onError: (error: unknown) => void): Periodic {
  let timer: NodeJS.Timeout | undefined;
  let running = false;
  const next = () => {
    if (running) {
      timer = setTimeout(tick, intervalMs);
      timer.unref();
    }
  };
  const tick = () => {
    let result: void | Promise<void>;
    try {
      result = step();
    } catch (error) {
      onError(error);
      next();
      return;
    }
    if (result instanceof Promise) result.catch(onError).finally(next);
    else next();
  };
  return {
    start(firstDelayMs = intervalMs) {
      running = true;
      if (firstDelayMs === 0) {
        tick();
        return;
      }
      timer = setTimeout(tick, firstDelayMs);
      timer.unref();
    },
    stop() {
      running = false;
      if (timer) clearTimeout(timer);
      timer = undefined;
    },
  };
}
