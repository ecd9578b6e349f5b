import { describe, expect, it } from 'vitest';
import { fit, printable } from './text.ts';

describe('printable: attacker-controlled text made inert for a terminal', () => {
  it.each([
    ['clear screen', 'a\u001b[2Jb', 'a\\x1b[2Jb'],
    ['C1 CSI', 'a\u009b31mb', 'a\\x9b31mb'],
    ['bell and newline', 'a\u0007\nb', 'a\\x07\\x0ab'],
    ['right-to-left override', 'evil\u202etxt.exe', 'evil\\u202etxt.exe'],
    ['zero-width and direction marks', 'a\u200bb\u200fc\ufeff', 'a\\u200bb\\u200fc\\ufeff'],
    ['a literal backslash cannot fake an escape', 'a\\x1bb', 'a\\\\x1bb'],
    ['plain text untouched', '/usr/bin/ls -la ./é', '/usr/bin/ls -la ./é'],
  ])('%s', (_name, input, expected) => {
    expect(printable(input)).toBe(expected);
  });

  it('fits text to a width with an ellipsis', () => {
    expect(fit('abcdef', 4)).toBe('abc…');
    expect(fit('abc', 4)).toBe('abc');
    expect(fit('abcdef', 0)).toBe('abcdef');
  });
});
