import { describe, expect, it } from 'vitest';
import { printable } from './dom.ts';

describe('printable', () => {
  it('writes out control characters, DEL and C1 as \\xNN', () => {
    expect(printable('a\x1b[31mred\x1b]0;title\x07\x7f\x9b')).toBe('a\\x1b[31mred\\x1b]0;title\\x07\\x7f\\x9b');
  });
  it('writes out bidi overrides and zero-width characters that make text read other than it is', () => {
    expect(printable('file\u202egpj.exe\u200b')).toBe('file\\u{202e}gpj.exe\\u{200b}');
  });
  it('keeps tabs and newlines only when asked for multiline text', () => {
    expect(printable('a\tb\nc\r')).toBe('a\\x09b\\x0ac\\x0d');
    expect(printable('a\tb\nc\r', true)).toBe('a\tb\nc\\x0d');
  });
  it('leaves markup as the characters it is (it is only ever put in a text node)', () => {
    expect(printable('<img src=x onerror=alert(1)>')).toBe('<img src=x onerror=alert(1)>');
  });
  it('reads null and undefined as empty, numbers as their text', () => {
    expect(printable(null)).toBe('');
    expect(printable(undefined)).toBe('');
    expect(printable(42)).toBe('42');
  });
});
