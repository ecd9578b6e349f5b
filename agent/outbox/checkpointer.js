// The outbox's WAL checkpoints, on a thread of their own: a checkpoint copies the WAL into the database
// and syncs the file (tens of ms on a slow disk), which on the agent's own thread held up everything it
// does, the recorded shells it relays among them. PASSIVE: it never waits for, or blocks, the writer.
// Plain JavaScript: a worker starts without the TypeScript loader.
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

const db = new Database(workerData.path, { fileMustExist: true });
db.pragma('busy_timeout = 0');
let failures = 0;
const checkpoint = () => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
    failures = 0;
  } catch (error) {
    // Busy (the writer mid-commit) is the next tick's; anything else, told after a few in a row.
    if (++failures === 5) parentPort.postMessage({ error: error.message });
  }
};
const timer = setInterval(checkpoint, workerData.intervalMs);
parentPort.on('message', (message) => {
  if (message !== 'stop') return;
  clearInterval(timer);
  db.close();
  parentPort.close();
});
