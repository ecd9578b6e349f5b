// Command lines reported by the shell itself. The recorded shell's bash prints, from PS0 (after a line
// is read, before it runs, builtins included), a private OSC sequence carrying the session's secret
// mark, the working directory and the history line, both base64:
//
//     ESC ] 6973 ; <mark> ; <base64 cwd> ; <base64 command line> BEL
//
// The daemon takes these out of the output before the terminal, the recording or the live view see
// them. A sequence without this session's mark (printed by `cat` of a crafted file, say) is left alone
// as data: it cannot forge a command event.

const PREFIX = Buffer.from('\x1b]6973;');
const BEL = 0x07;
/** A sequence longer than this is not ours: passed through as it is. */
const MAX_MARK_BYTES = 80 * 1024;

export interface ReportedCommand {
  commandLine: string;
  cwd: string;
}

export class CommandMarks {
  readonly #mark: string;
  /** Bytes held back because they may be the start of a sequence split across reads. */
  #held: Buffer | undefined;

  constructor(mark: string) {
    this.#mark = mark;
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
      const start = input.indexOf(PREFIX, from);
      if (start === -1) {
        // A partial prefix at the very end may continue in the next read: hold it back.
        const tail = partialPrefixAt(input, Math.max(from, input.length - PREFIX.length + 1));
        kept.push(input.subarray(from, tail));
        if (tail < input.length) this.#held = Buffer.from(input.subarray(tail));
        break;
      }
      const end = input.indexOf(BEL, start + PREFIX.length);
      if (end === -1) {
        if (input.length - start < MAX_MARK_BYTES) {
          kept.push(input.subarray(from, start));
          this.#held = Buffer.from(input.subarray(start));
        } else kept.push(input.subarray(from));
        break;
      }
      const command = this.#parse(input.subarray(start + PREFIX.length, end).toString('latin1'));
      if (command) {
        kept.push(input.subarray(from, start));
        commands.push(command);
      } else kept.push(input.subarray(from, end + 1));
      from = end + 1;
    }
    input = kept.length === 1 ? kept[0]! : Buffer.concat(kept);
    return { output: input, commands };
  }

  /** Bytes held back, released as they are (the session ended, or nothing followed in time). */
  release(): Buffer | undefined {
    const held = this.#held;
    this.#held = undefined;
    return held;
  }

  #parse(body: string): ReportedCommand | undefined {
    const parts = body.split(';');
    if (parts.length !== 3 || parts[0] !== this.#mark) return undefined;
    const cwd = Buffer.from(parts[1]!, 'base64').toString('utf8');
    const history = Buffer.from(parts[2]!, 'base64').toString('utf8');
    // `history 1` prints "  123  the line" (a `*` marks an edited entry).
    const commandLine = history.replace(/^\s*\d+\*?\s\s?/, '').replace(/\n$/, '');
    return { commandLine, cwd };
  }
}

/** Where a suffix of `buffer` that is a proper prefix of PREFIX begins (buffer.length if none). */
function partialPrefixAt(buffer: Buffer, from: number): number {
  for (let at = Math.max(0, from); at < buffer.length; at++) {
    if (buffer[at] !== 0x1b) continue;
    const length = buffer.length - at;
    if (length < PREFIX.length && buffer.subarray(at).equals(PREFIX.subarray(0, length))) return at;
  }
  return buffer.length;
}

/**
 * The rc file the recorded bash reads: the user's usual start-up files, then the hook. Command lines
 * reach the daemon through PS0; turning it off is itself a command line, reported before it runs.
 */
export const BASH_RC = String.raw`# omwatch recorded shell: the usual start-up files, then the command hook.
if [ -f /etc/profile ]; then . /etc/profile; fi
for __omwatch_f in "$HOME/.bash_profile" "$HOME/.bash_login" "$HOME/.profile"; do
  if [ -f "$__omwatch_f" ]; then . "$__omwatch_f"; break; fi
done
unset __omwatch_f
case "$-" in *i*) ;; *) return 0 2>/dev/null ;; esac
[ -f "$HOME/.bashrc" ] && ! grep -qs '\.bashrc' "$HOME/.profile" && . "$HOME/.bashrc"
HISTCONTROL=
HISTIGNORE=
set -o history
__omwatch_ps0() {
  local line
  line=$(HISTTIMEFORMAT= builtin history 1)
  builtin printf '\033]6973;%s;%s;%s\007' "$OMWATCH_MARK" "$(builtin printf %s "$PWD" | base64 -w0)" "$(builtin printf %s "$line" | base64 -w0)"
}
PS0='$(__omwatch_ps0)'"$PS0"
`;
