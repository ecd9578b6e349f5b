// The body of the SQLite writer thread: its own connection to the collector's database, committing
// the group commits the main thread hands it, so inserts run beside parsing and hash checks.
import { parentPort, workerData } from 'node:worker_threads';
import type { Commit } from '../types.ts';
import { openSqliteStore, type SqliteStoreOptions } from './index.ts';

const { path, options } = workerData as { path: string; options: SqliteStoreOptions };
const store = openSqliteStore(path, options);
parentPort!.on('message', (message: { id: number; commits: Commit[] } | 'close') => {
  if (message === 'close') {
    store.close();
    parentPort!.close();
    return;
  }
  try {
    store.commitMany(message.commits);
    parentPort!.postMessage({ id: message.id });
  } catch (error) {
    parentPort!.postMessage({ id: message.id, error: (error as Error).message });
  }
});
parentPort!.postMessage('ready');
