import { describe, expect, it } from 'vitest';
import { castDuration } from './cast.ts';

const cast = (events: unknown[][]) => [JSON.stringify({ version: 2, width: 80, height: 24 }), ...events.map((e) => JSON.stringify(e))].join('\n');

describe('castDuration', () => {
  it('is the time of the last event when no pause is longer than the idle limit', () => {
    expect(castDuration(cast([[0.5, 'o', 'a'], [1.5, 'o', 'b'], [2, 'r', '100x40']]))).toBeCloseTo(2);
  });
  it('counts a long pause as the idle limit, as the player plays it', () => {
    expect(castDuration(cast([[0.5, 'o', 'a'], [60.5, 'o', 'b']]))).toBeCloseTo(2.5);
  });
  it('skips lines that are not events and is 0 for a header alone', () => {
    expect(castDuration(`${cast([[1, 'o', 'a']])}\nnot json\n["x"]`)).toBeCloseTo(1);
    expect(castDuration(cast([]))).toBe(0);
  });
});
