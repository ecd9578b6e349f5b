// uid → user name, from the passwd file, cached. A miss re-reads the file, at most every few
// seconds, so accounts created after the agent started are named too.
import { readFileSync } from 'node:fs';
import { parsePasswd } from './parse.ts';

const REREAD_AFTER_MS = 5_000;

export class UserNames {
  readonly #path: string;
  #names = new Map<number, string>();
  #readAtMs = Number.NEGATIVE_INFINITY;

  constructor(path: string) {
    this.#path = path;
    this.#reload();
  }

  name(uid: number): string | undefined {
    const known = this.#names.get(uid);
    if (known !== undefined) return known;
    if (Date.now() - this.#readAtMs >= REREAD_AFTER_MS) {
      this.#reload();
      return this.#names.get(uid);
    }
    return undefined;
  }

  #reload(): void {
    this.#readAtMs = Date.now();
    try {
      this.#names = parsePasswd(readFileSync(this.#path, 'utf8'));
    } catch {
      // No passwd file (a container, Windows): users are named by uid alone; the table keeps `uid`.
    }
  }
}
