// A session's recording as asciicast v2 event lines, cut into chunks for the outbox (the hash chain).
// Output is decoded as UTF-8 across chunk boundaries (a character split between two reads stays whole),
// as asciinema does. Input is kept only when policy asks, and then only what the terminal showed back at
// once: a byte typed with echo off (a password prompt: `read -s`, sudo, ssh) never appears on the screen,
// so it never enters the recording. Nothing in `i` events is then news to someone reading the `o` events.

/** A chunk is written once it holds this many characters, or after FLUSH_MS. */
export const CHUNK_CHARS = 64 * 1024;
export const FLUSH_MS = 200;
/** Typed input counts as echoed only if the terminal shows it back within this time. */
const ECHO_WINDOW_MS = 250;

export interface RecordingOptions {
  startMs: number;
  recordInput: boolean;
  /** Gets each chunk, numbered from 0. */
  write: (chunk: { Chunk: number; Data: string }) => void;
  now?: () => number;
  chunkChars?: number;
  flushMs?: number;
}

export class Recording {
  readonly stats = { chunks: 0, outputBytes: 0, inputRecorded: 0, inputWithheld: 0 };
  readonly #options: RecordingOptions;
  readonly #now: () => number;
  readonly #decoder = new TextDecoder('utf-8');
  #lines: string[] = [];
  #chars = 0;
  #timer: NodeJS.Timeout | undefined;
  /** Typed input waiting to be seen echoed: text and when it was typed. */
  #typed: Array<{ text: string; atMs: number }> = [];
  #closed = false;
  #lastAt = 0;

  constructor(options: RecordingOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** Seconds since the session started (to `atMs`, else now), as asciicast writes them. */
  elapsed(atMs = this.#now()): number {
    return Math.max(0, Math.round(atMs - this.#options.startMs) / 1000);
  }

  /** Records terminal output shown at `atMs`; returns it decoded (what the live view shows). */
  output(bytes: Buffer, atMs = this.#now()): string {
    this.stats.outputBytes += bytes.length;
    const text = this.#decoder.decode(bytes, { stream: true });
    if (text.length === 0) return text;
    if (this.#typed.length > 0) this.#matchEcho(text, atMs);
    this.#event('o', text, atMs);
    return text;
  }

  input(bytes: Buffer, atMs = this.#now()): void {
    if (!this.#options.recordInput) return;
    this.#typed.push({ text: bytes.toString('utf8'), atMs });
    if (this.#typed.length > 64) {
      this.#typed.shift();
      this.stats.inputWithheld++;
    }
  }

  resize(cols: number, rows: number, atMs = this.#now()): void {
    this.#event('r', `${cols}x${rows}`, atMs);
  }

  /** Writes what is pending as a chunk now. */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#lines.length === 0) return;
    const data = this.#lines.join('');
    this.#lines = [];
    this.#chars = 0;
    this.#options.write({ Chunk: this.stats.chunks++, Data: data });
  }

  /** Flushes the decoder's last partial character and the pending lines; nothing is recorded after. */
  close(): void {
    if (this.#closed) return;
    const rest = this.#decoder.decode();
    if (rest.length > 0) this.#event('o', rest);
    this.stats.inputWithheld += this.#typed.length;
    this.#typed = [];
    this.flush();
    this.#closed = true;
  }

  #event(type: 'o' | 'i' | 'r', text: string, atMs = this.#now()): void {
    if (this.#closed) return;
    // Times never go back in a recording (a record queued a moment before another may carry a later clock reading).
    this.#lastAt = Math.max(this.#lastAt, this.elapsed(atMs));
    const line = `[${this.#lastAt},"${type}",${JSON.stringify(text)}]\n`;
    this.#lines.push(line);
    this.#chars += line.length;
    if (this.#chars >= (this.#options.chunkChars ?? CHUNK_CHARS)) this.flush();
    else if (!this.#timer) {
      this.#timer = setTimeout(() => this.flush(), this.#options.flushMs ?? FLUSH_MS);
      this.#timer.unref();
    }
  }

  /** Typed text is recorded (before this output) only if this output begins with it. */
  #matchEcho(text: string, now: number): void {
    let offset = 0;
    while (this.#typed.length > 0) {
      const typed = this.#typed[0]!;
      if (now - typed.atMs > ECHO_WINDOW_MS) {
        this.#typed.shift();
        this.stats.inputWithheld++;
        continue;
      }
      const echo = typed.text === '\r' ? (text.startsWith('\r\n', offset) ? '\r\n' : undefined) : (text.startsWith(typed.text, offset) ? typed.text : undefined);
      if (echo === undefined) {
        // Not shown back: echo is off (or the program draws something else). Withheld for good.
        this.#typed.shift();
        this.stats.inputWithheld++;
        continue;
      }
      this.#typed.shift();
      this.#event('i', typed.text, typed.atMs);
      this.stats.inputRecorded++;
      offset += echo.length;
      if (offset >= text.length) break;
    }
  }
}
