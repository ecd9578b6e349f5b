// Terminal output of attacker-controlled text (command lines, user names): control characters are
// shown escaped, so a crafted process title cannot move the cursor, recolour or rewrite the screen.

// C0 and C1 controls, and the invisible or direction-changing marks that can disguise text.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;

/** Escapes what a terminal would act on; a backslash is doubled so an escape cannot be faked. */
export function printable(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(UNSAFE, (c) => {
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/** Cuts to `width` characters with an ellipsis; width ≤ 0 means no limit. */
export function fit(text: string, width: number): string {
  if (width <= 0 || text.length <= width) return text;
  return width <= 1 ? text.slice(0, width) : `${text.slice(0, width - 1)}…`;
}

/** A plain aligned table: every cell made printable; the last column takes what width is left. */
export function table(headers: string[], rows: string[][], totalWidth: number): string {
  const cells = rows.map((row) => row.map(printable));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((row) => (row[i] ?? '').length)));
  const fixed = widths.slice(0, -1).reduce((sum, w) => sum + w + 2, 0);
  const lastWidth = totalWidth > 0 ? Math.max(20, totalWidth - fixed) : 0;
  const line = (row: string[]) => row
    .map((cell, i) => (i === row.length - 1 ? fit(cell, lastWidth) : cell.padEnd(widths[i] ?? 0)))
    .join('  ')
    .trimEnd();
  return [line(headers), ...cells.map(line)].join('\n');
}
