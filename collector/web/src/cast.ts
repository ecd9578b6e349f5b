// Reading an asciicast v2 recording just enough to place the player: how long it plays once idle
// pauses are cut. Pure, so it is tested without a browser.

/** Pauses longer than this play as this long (the player's idleTimeLimit). */
export const IDLE_LIMIT_S = 2;

/**
 * How long an asciicast v2 text plays with idle pauses cut to IDLE_LIMIT_S (seconds): where its final
 * screen is, shown before it plays.
 */
export function castDuration(cast: string): number {
  let played = 0;
  let last = 0;
  for (const line of cast.split('\n').slice(1)) {
    if (!line.startsWith('[')) continue;
    try {
      const event = JSON.parse(line) as unknown;
      if (!Array.isArray(event) || typeof event[0] !== 'number') continue;
      played += Math.min(Math.max(0, event[0] - last), IDLE_LIMIT_S);
      last = event[0];
    } catch {
      // A line that is not an event is the player's to refuse.
    }
  }
  return played;
}
