// Command lines reported by the shell itself. The recorded shell's bash, from a DEBUG trap armed at
// each prompt (so once per line read, before it runs, builtins included), prints a private OSC sequence
// carrying the session's secret mark, the working directory (percent-encoded) and its history line:
//
//     ESC ] 6973 ; <mark> ; <cwd> ; <history line> BEL
//
// It runs in the shell itself with builtins only (no subshell, no fork), so it is done before a Ctrl-C
// typed after Enter can interrupt it. The pty relay (native/pty-relay, scan()) takes these out of the
// output before the terminal, the recording or the live view see them, holding back a possible start of
// one at the end of a read for 20 ms. A sequence without this session's mark (printed by `cat` of a
// crafted file, say) is left alone as data: it cannot forge a command event.

import { readFileSync } from 'node:fs';

export interface ReportedCommand {
  commandLine: string;
  cwd: string;
}

/** A report's body (`<cwd>;<history line>`, as the relay took it out of the output); undefined if malformed. */
export function parseCommandReport(body: Buffer): ReportedCommand | undefined {
  const split = body.indexOf(0x3b);
  if (split === -1) return undefined;
  const cwd = decodePercent(body.subarray(0, split).toString('utf8'));
  // `history 1` prints "  123  the line" (a `*` marks an edited entry), then a newline.
  const commandLine = body.subarray(split + 1).toString('utf8').replace(/^\s*\d+\*?\s\s?/, '').replace(/\r?\n$/, '');
  return { commandLine, cwd };
}

/** Undoes the rc file's __omwatch_enc: %XX escapes of %, ;, BEL, ESC, CR and LF. */
function decodePercent(text: string): string {
  return text.replace(/%([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
}

/**
 * The rc file the recorded bash reads (omwatch.bashrc, shipped beside this file): the user's usual
 * start-up files, then the hook. Turning the hook off is itself a command line, reported before it runs
 * (and alerted on by the pack).
 */
export const BASH_RC = readFileSync(new URL('./omwatch.bashrc', import.meta.url), 'utf8');
