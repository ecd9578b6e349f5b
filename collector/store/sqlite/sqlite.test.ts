// The SQLite store against the store contract, on real files, and what only SQLite has: the file
// checks at open, WAL, and a commit that survives the process being killed right after it returns.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sha256Hex, storeContract, TestChain } from '../contract.ts';
import type { Store } from '../types.ts';
import { openSqliteStore, SCHEMA_VERSION, StoreError } from './index.ts';

storeContract('sqlite', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'omwatch-store-'));
  const path = join(dir, 'collector.db');
  let current = openSqliteStore(path);
  return {
    store: current,
    reopen: async () => {
      current.close();
      current = openSqliteStore(path);
      return current;
    },
    cleanup: async () => {
      current.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe('SQLite store', () => {
  let dir: string;
  let path: string;
  const open: Store[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'omwatch-sqlite-'));
    path = join(dir, 'collector.db');
  });
  afterEach(async () => {
    for (const store of open.splice(0)) store.close();
    await rm(dir, { recursive: true, force: true });
  });

  function openStore(options?: Parameters<typeof openSqliteStore>[1]): Store {
    const store = openSqliteStore(path, options);
    open.push(store);
    return store;
  }

  function openError(): StoreError {
    try {
      openStore();
    } catch (error) {
      if (error instanceof StoreError) return error;
      throw error;
    }
    throw new Error(`openSqliteStore(${path}) did not fail`);
  }

  it('creates a WAL database stamped with its schema version', () => {
    openStore().close();
    const raw = new Database(path, { readonly: true });
    try {
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(raw.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
    } finally {
      raw.close();
    }
  });

  it('migrates a version 1 database in place: the session index, triage and the access log are added, tokens kept', () => {
    const store = openStore();
    store.createToken({ id: 't1', role: 'auditor', name: 'kept', secretHash: 'a'.repeat(64) });
    store.close();
    const raw = new Database(path);
    // What version 1 lacked: the session index (2); triage, the access log and the page indexes (3).
    raw.exec('DROP INDEX records_session; DROP TABLE triage; DROP TABLE triage_history; DROP TABLE access_log; DROP INDEX records_id; DROP INDEX records_kind_page; DROP INDEX records_category_page');
    raw.pragma('user_version = 1');
    raw.close();
    const migrated = openStore();
    expect(migrated.listTokens().map((t) => t.name)).toEqual(['kept']);
    migrated.close();
    const after = new Database(path, { readonly: true });
    try {
      expect(after.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION);
      const names = after.prepare<[], string>('SELECT name FROM sqlite_schema ORDER BY name').pluck().all();
      expect(names).toEqual(expect.arrayContaining(['records_session', 'triage', 'triage_history', 'access_log', 'records_id', 'records_kind_page', 'records_category_page']));
    } finally {
      after.close();
    }
  });

  it('refuses a file that is not a database, naming it, and leaves it as it was', async () => {
    const text = 'these are not the bytes of an SQLite file\n'.repeat(100);
    await writeFile(path, text);
    const error = openError();
    expect(error.code).toBe('STORE_NOT_A_DATABASE');
    expect(error.message).toContain(path);
    expect(error.message).toMatch(/not an SQLite database/);
    expect(await readFile(path, 'utf8')).toBe(text);
  });

  it('refuses a database from a newer collector, naming the file and both versions, and leaves it as it was', () => {
    const raw = new Database(path);
    raw.exec('CREATE TABLE records (x)');
    raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    raw.close();
    const error = openError();
    expect(error.code).toBe('STORE_TOO_NEW');
    expect(error.message).toContain(path);
    expect(error.message).toContain(`schema version ${SCHEMA_VERSION + 1}`);
    expect(error.message).toContain(`(${SCHEMA_VERSION})`);
    const after = new Database(path, { readonly: true });
    try {
      expect(after.pragma('user_version', { simple: true })).toBe(SCHEMA_VERSION + 1);
      expect(after.pragma('journal_mode', { simple: true })).toBe('delete');
    } finally {
      after.close();
    }
  });

  it('refuses an SQLite database that is some other program’s', () => {
    const raw = new Database(path);
    raw.exec('CREATE TABLE invoices (id INTEGER PRIMARY KEY)');
    raw.close();
    const error = openError();
    expect(error.code).toBe('STORE_FOREIGN_DATABASE');
    expect(error.message).toContain(path);
    expect(error.message).toContain('invoices');
  });

  it('says which path it could not open when the folder is missing', () => {
    path = join(dir, 'missing', 'collector.db');
    const error = openError();
    expect(error.code).toBe('STORE_OPEN_FAILED');
    expect(error.message).toContain(path);
  });

  it('opens with synchronous NORMAL too', () => {
    const store = openStore({ synchronous: 'NORMAL' });
    store.createAgent({ id: 'ag-1', name: 'a', hostId: null, keyHash: sha256Hex('k'), enrolledWith: 'tok' });
    store.claimStream('stream-0001', 'ag-1');
    const chain = new TestChain('stream-0001');
    chain.event();
    store.commit(chain.commit());
    expect(store.counts().records).toBe(1);
  });

  it('names the record that failed a commit', () => {
    const store = openStore();
    store.createAgent({ id: 'ag-1', name: 'a', hostId: null, keyHash: sha256Hex('k'), enrolledWith: 'tok' });
    store.claimStream('stream-0001', 'ag-1');
    const chain = new TestChain('stream-0001');
    chain.event();
    chain.event();
    const commit = chain.commit();
    const records = commit.records.map((r) => (r.seq === 2 ? { ...r, time: 'yesterday' } : r));
    expect(() => store.commit({ ...commit, records })).toThrow(/stream stream-0001 seq 2: NOT NULL constraint failed: records\.time_ms/);
    expect(store.counts().records).toBe(0);
  });

  it('refuses to read once closed, and closes a read left open', () => {
    const store = openStore();
    store.createAgent({ id: 'ag-1', name: 'a', hostId: null, keyHash: sha256Hex('k'), enrolledWith: 'tok' });
    store.claimStream('stream-0001', 'ag-1');
    const chain = new TestChain('stream-0001');
    chain.event();
    chain.event();
    store.commit(chain.commit());
    const reading = store.records();
    expect(reading.next().value?.seq).toBe(1);
    store.close();
    expect(() => reading.next()).toThrow(`the store ${path} was closed while its records were being read`);
    expect(() => store.records()).toThrow(`the store ${path} is closed`);
  });

  it('refuses a filter time that is not a time', () => {
    const store = openStore();
    expect(() => [...store.records({ since: 'last week' })]).toThrow(/filter since: expected an ISO time, got "last week"/);
    expect(() => store.collectorAlerts({ until: 'soon' })).toThrow(/filter until: expected an ISO time/);
  });

  it('keeps a commit once it has returned, even if the process is killed at once', async () => {
    const chain = new TestChain('stream-0001');
    chain.event();
    chain.alert();
    const commit = chain.commit();
    // A child process commits, says so, and waits to be killed; it never closes the database.
    const script = `
      import { register } from 'tsx/esm/api';
      register();
      const { openSqliteStore } = await import(${JSON.stringify(new URL('./index.ts', import.meta.url).href)});
      const store = openSqliteStore(process.env.DB_PATH);
      store.createAgent({ id: 'ag-1', name: 'a', hostId: null, keyHash: 'k', enrolledWith: 'tok' });
      store.claimStream('stream-0001', 'ag-1');
      store.commit(JSON.parse(process.env.COMMIT));
      process.stdout.write('committed\\n');
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      cwd: new URL('../../..', import.meta.url).pathname,
      env: { ...process.env, DB_PATH: path, COMMIT: JSON.stringify(commit) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = once(child, 'exit');
    await new Promise<void>((resolve, reject) => {
      let stdout = '';
      child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
        if (stdout.includes('committed\n')) resolve();
      });
      void exited.then(([code]) => reject(new Error(`child exited (${String(code)}) before committing: ${stderr}`)));
    });
    child.kill('SIGKILL');
    const [, signal] = await exited;
    expect(signal).toBe('SIGKILL');

    const store = openStore();
    expect([...store.records()].map((r) => [r.seq, r.hash, r.body])).toEqual(commit.records.map((r) => [r.seq, r.hash, r.body]));
    expect(store.stream('stream-0001')).toMatchObject(chain.state);
  });
});
