// Group commits on a thread of their own: on this 2-core class of machine, SQLite inserts cost as much
// as parsing and checking the frames, so the two run side by side. One commit in flight at a time, in
// order; the caller queues the next meanwhile (which makes the groups larger under load).
import { Worker } from 'node:worker_threads';
import type { Commit } from '../types.ts';
import type { SqliteStoreOptions } from './index.ts';

export class SqliteWriter {
  readonly #worker: Worker;
  readonly #ready: Promise<void>;
  readonly #pending = new Map<number, { resolve: () => void; reject: (error: Error) => void }>();
  #next = 0;
  /** Set once the thread is gone: every commit from then on fails at once. */
  #dead: Error | undefined;

  /** `onDeath` is told once if the thread dies; ingest cannot go on without it. */
  constructor(path: string, options: SqliteStoreOptions = {}, onDeath: (error: Error) => void = () => {}) {
    // The thread runs TypeScript as the main thread does (its entry registers tsx).
    this.#worker = new Worker(new URL('./writer-thread.js', import.meta.url), { workerData: { path, options } });
    this.#ready = new Promise((resolve, reject) => {
      this.#worker.once('error', reject);
      const onReady = (message: unknown) => {
        if (message !== 'ready') return;
        this.#worker.off('message', onReady);
        resolve();
      };
      this.#worker.on('message', onReady);
    });
    this.#worker.on('message', (message: { id?: number; error?: string }) => {
      if (typeof message !== 'object' || message.id === undefined) return;
      const pending = this.#pending.get(message.id);
      this.#pending.delete(message.id);
      if (message.error === undefined) pending?.resolve();
      else pending?.reject(new Error(message.error));
    });
    const died = (error: Error) => {
      if (this.#dead) return;
      this.#dead = error;
      for (const pending of this.#pending.values()) pending.reject(error);
      this.#pending.clear();
      onDeath(error);
    };
    this.#worker.on('error', died);
    this.#worker.on('exit', (code) => died(new Error(`the SQLite writer thread exited (code ${code})`)));
  }

  ready(): Promise<void> {
    return this.#ready;
  }

  /** Resolves once the commits are durable in the database; rejects (and stores nothing) if any fails. */
  async commitMany(commits: readonly Commit[]): Promise<void> {
    await this.#ready;
    if (this.#dead) throw this.#dead;
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ id, commits });
    });
  }

  async close(): Promise<void> {
    if (this.#dead) return;
    const exited = new Promise<void>((resolve) => this.#worker.once('exit', () => resolve()));
    this.#worker.postMessage('close');
    await exited;
  }
}
