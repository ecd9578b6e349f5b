// Command lines reported by the shell itself. The recorded shell's bash, from a DEBUG trap armed at
// each prompt (so once per line read, before it runs, builtins included), prints a private OSC sequence
// carrying the session's secret mark, the working directory (percent-encoded) and its history line:
//
//     ESC ] 6973 ; <mark> ; <cwd> ; <history line> BEL
//
// It runs in the shell itself with builtins only (no subshell, no fork), so it is done before a Ctrl-C
// typed after Enter can interrupt it. The daemon takes these out of the output before the terminal, the
// recording or the live view see them. A sequence without this session's mark (printed by `cat` of a
// crafted file, say) is left alone as data: it cannot forge a command event.

import { readFileSync } from 'node:fs';

const BEL = 0x07;
/** A sequence longer than this is not ours: passed through as it is. */
const MAX_MARK_BYTES = 80 * 1024;

export interface ReportedCommand {
  commandLine: string;
  cwd: string;
}

export class CommandMarks {
  /** ESC ] 6973 ; <mark> ; — only this session's reports are even looked at. */
  readonly #prefix: Buffer;
  /** Bytes held back because they may be the start of a sequence split across reads. */
  #held: Buffer | undefined;

  constructor(mark: string) {
    this.#prefix = Buffer.from(`\x1b]6973;${mark};`);
  }

  /** Output with this session's sequences removed, and the commands they carried. */
  scan(chunk: Buffer): { output: Buffer; commands: ReportedCommand[] } {
    let input = this.#held ? Buffer.concat([this.#held, chunk]) : chunk;
    this.#held = undefined;
    if (input.indexOf(0x1b) === -1) return { output: input, commands: [] };
    const commands: ReportedCommand[] = [];
    const kept: Buffer[] = [];
    let from = 0;
    for (;;) {
      const start = input.indexOf(this.#prefix, from);
      if (start === -1) {
        // A partial prefix at the very end may continue in the next read: hold it back.
        const tail = partialPrefixAt(input, Math.max(from, input.length - this.#prefix.length + 1), this.#prefix);
        kept.push(input.subarray(from, tail));
        if (tail < input.length) this.#held = Buffer.from(input.subarray(tail));
        break;
      }
      const end = input.indexOf(BEL, start + this.#prefix.length);
      if (end === -1) {
        if (input.length - start < MAX_MARK_BYTES) {
          kept.push(input.subarray(from, start));
          this.#held = Buffer.from(input.subarray(start));
        } else kept.push(input.subarray(from));
        break;
      }
      const command = this.#parse(input.subarray(start + this.#prefix.length, end));
      if (command) {
        kept.push(input.subarray(from, start));
        commands.push(command);
      } else kept.push(input.subarray(from, end + 1));
      from = end + 1;
    }
    input = kept.length === 1 ? kept[0]! : Buffer.concat(kept);
    return { output: input, commands };
  }

  /** Whether bytes are held back (a possible start of a report at the end of the last read). */
  get holding(): boolean {
    return this.#held !== undefined;
  }

  /** Bytes held back, released as they are (the session ended, or nothing followed in time). */
  release(): Buffer | undefined {
    const held = this.#held;
    this.#held = undefined;
    return held;
  }

  #parse(body: Buffer): ReportedCommand | undefined {
    const split = body.indexOf(0x3b);
    if (split === -1) return undefined;
    const cwd = decodePercent(body.subarray(0, split).toString('utf8'));
    // `history 1` prints "  123  the line" (a `*` marks an edited entry), then a newline.
    const commandLine = body.subarray(split + 1).toString('utf8').replace(/^\s*\d+\*?\s\s?/, '').replace(/\r?\n$/, '');
    return { commandLine, cwd };
  }
}

/** Undoes the rc file's __omwatch_enc: %XX escapes of %, ;, BEL, ESC, CR and LF. */
function decodePercent(text: string): string {
  return text.replace(/%([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
}

/** Where a suffix of `buffer` that is a proper prefix of `prefix` begins (buffer.length if none). */
function partialPrefixAt(buffer: Buffer, from: number, prefix: Buffer): number {
  for (let at = Math.max(0, from); at < buffer.length; at++) {
    if (buffer[at] !== 0x1b) continue;
    const length = buffer.length - at;
    if (length < prefix.length && buffer.subarray(at).equals(prefix.subarray(0, length))) return at;
  }
  return buffer.length;
}

/**
 * The rc file the recorded bash reads (omwatch.bashrc, shipped beside this file): the user's usual
 * start-up files, then the hook. Turning the hook off is itself a command line, reported before it runs
 * (and alerted on by the pack).
 */
export const BASH_RC = readFileSync(new URL('./omwatch.bashrc', import.meta.url), 'utf8');
