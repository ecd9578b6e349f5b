// verifyStore against real SQLite stores holding real hash chains, tampered with behind the store's back
// the way someone with the database file could: edited, deleted, reordered records, forged declarations.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { v7 as uuidv7 } from 'uuid';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chainHash, GENESIS } from './protocol/chain.ts';
import { sha256Hex, TestChain } from './store/contract.ts';
import { openSqliteStore } from './store/sqlite/index.ts';
import type { Store } from './store/types.ts';
import { verifyStore, type StreamVerdict } from './verify.ts';

let dir: string;
let path: string;
let store: Store;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'omwatch-verify-'));
  path = join(dir, 'collector.db');
  store = openSqliteStore(path);
});
afterEach(async () => {
  store.close();
  await rm(dir, { recursive: true, force: true });
});

/** Stores the chain's delivered records for a new agent, in one commit, as ingest would. */
function deliver(chain: TestChain, agentId = 'ag-1'): void {
  if (!store.agent(agentId)) store.createAgent({ id: agentId, name: agentId, hostId: null, keyHash: sha256Hex(agentId), enrolledWith: 'tok' });
  store.claimStream(chain.stream, agentId);
  if (chain.records.length > 0) store.commit(chain.commit());
}

/** SQL run on the database file directly, past the store. */
function tamper(sql: string, ...params: unknown[]): void {
  const raw = new Database(path);
  try {
    const changes = raw.prepare(sql).run(...params).changes;
    if (changes === 0) throw new Error(`tamper changed nothing: ${sql}`);
  } finally {
    raw.close();
  }
}

function bodyOf(stream: string, seq: number): Record<string, unknown> {
  const record = [...store.records({ stream })].find((r) => r.seq === seq);
  if (!record) throw new Error(`no record ${stream} ${seq}`);
  return JSON.parse(record.body) as Record<string, unknown>;
}

/** Replaces a stored record's body, hash and prev columns with the given body's. */
function rewrite(stream: string, seq: number, body: Record<string, unknown>): void {
  tamper('UPDATE records SET body = ?, hash = ?, prev = ? WHERE stream = ? AND seq = ?', JSON.stringify(body), body['hash'], body['prev'], stream, seq);
}

function only(verdicts: StreamVerdict[]): StreamVerdict {
  expect(verdicts).toHaveLength(1);
  return verdicts[0]!;
}

/** e1 e2 e3 e4 e5 (with an alert at 3), stored whole. */
function intact(): TestChain {
  const chain = new TestChain('stream-0001');
  chain.event();
  chain.event({ sessionId: 'ssh-1' });
  chain.alert();
  chain.event();
  chain.event();
  deliver(chain);
  return chain;
}

describe('verifyStore', () => {
  it('passes an intact chain and says what it holds', () => {
    intact();
    expect(verifyStore(store)).toEqual([
      { stream: 'stream-0001', agentId: 'ag-1', records: 5, firstSeq: 1, lastSeq: 5, declaredGaps: [], ok: true },
    ]);
  });

  it('passes a claimed stream that holds nothing yet', () => {
    deliver(new TestChain('stream-0001'));
    expect(verifyStore(store)).toEqual([{ stream: 'stream-0001', agentId: 'ag-1', records: 0, firstSeq: 0, lastSeq: 0, declaredGaps: [], ok: true }]);
  });

  it('catches a body edited after storage', () => {
    const chain = intact();
    const body = bodyOf('stream-0001', 2);
    (body['fields'] as Record<string, unknown>)['CommandLine'] = 'bash -c true';
    rewrite('stream-0001', 2, body);
    const verdict = only(verifyStore(store));
    expect(verdict.ok).toBe(false);
    expect(verdict.firstBroken).toEqual({
      seq: 2,
      reason: `hash mismatch: the body hashes to ${chainHash(body)}, the record carries ${chain.records[1]!.hash}`,
    });
  });

  it('catches an edited body re-hashed to match: the next record no longer links', () => {
    const chain = intact();
    const body = bodyOf('stream-0001', 2);
    (body['fields'] as Record<string, unknown>)['User'] = 'root';
    body['hash'] = chainHash(body);
    rewrite('stream-0001', 2, body);
    expect(only(verifyStore(store)).firstBroken).toEqual({
      seq: 3,
      reason: `broken link: expected prev ${String(body['hash'])} (the hash of seq 2), got ${chain.records[1]!.hash}`,
    });
  });

  it('catches a stored hash column that disagrees with the body', () => {
    intact();
    tamper('UPDATE records SET hash = ? WHERE stream = ? AND seq = 4', sha256Hex('other'), 'stream-0001');
    expect(only(verifyStore(store)).firstBroken).toMatchObject({ seq: 4, reason: expect.stringMatching(/^stored hash [0-9a-f]{64} differs from the body's hash/) });
  });

  it('catches a body that is not JSON', () => {
    intact();
    tamper("UPDATE records SET body = 'gone' WHERE stream = ? AND seq = 3", 'stream-0001');
    expect(only(verifyStore(store)).firstBroken).toMatchObject({ seq: 3, reason: expect.stringMatching(/^body is not JSON/) });
  });

  it('catches a record deleted from the middle as an undeclared gap', () => {
    intact();
    tamper('DELETE FROM records WHERE stream = ? AND seq = 3', 'stream-0001');
    const verdict = only(verifyStore(store));
    expect(verdict).toMatchObject({ ok: false, records: 4, firstSeq: 1, lastSeq: 5, declaredGaps: [] });
    expect(verdict.firstBroken).toEqual({ seq: 3, reason: 'undeclared gap: no buffer_dropped declaration in the store covers seq 3' });
  });

  it('catches the first records deleted: seq 1 is missing and nothing declares it', () => {
    intact();
    tamper('DELETE FROM records WHERE stream = ? AND seq <= 2', 'stream-0001');
    expect(only(verifyStore(store))).toMatchObject({ ok: false, firstSeq: 3, firstBroken: { seq: 1, reason: expect.stringMatching(/^undeclared gap: no buffer_dropped declaration in the store covers seqs 1–2/) } });
  });

  it('catches the last record deleted, by the acked mark', () => {
    intact();
    tamper('DELETE FROM records WHERE stream = ? AND seq = 5', 'stream-0001');
    expect(only(verifyStore(store)).firstBroken).toEqual({ seq: 5, reason: 'records 5–5 missing: the stream was acked up to seq 5' });
  });

  it('catches a stream state whose acked hash is not the hash of the record at the mark', () => {
    intact();
    tamper('UPDATE streams SET last_hash = ? WHERE stream = ?', sha256Hex('elsewhere'), 'stream-0001');
    expect(only(verifyStore(store)).firstBroken).toEqual({
      seq: 5,
      reason: expect.stringMatching(new RegExp(`^the stream's acked hash ${sha256Hex('elsewhere')} differs from the hash of seq 5, [0-9a-f]{64}$`)),
    });
  });

  it('accepts records past the acked mark, as a commit landing while it reads leaves them', () => {
    const chain = intact();
    tamper('UPDATE streams SET acked_seq = 3, last_hash = ? WHERE stream = ?', chain.records[2]!.hash, 'stream-0001');
    expect(only(verifyStore(store))).toMatchObject({ ok: true, lastSeq: 5 });
    tamper('UPDATE streams SET last_hash = ? WHERE stream = ?', chain.records[3]!.hash, 'stream-0001');
    expect(only(verifyStore(store)).firstBroken?.seq).toBe(3);
  });

  it('catches a stream acked past records it no longer holds at all', () => {
    intact();
    tamper('DELETE FROM records WHERE stream = ?', 'stream-0001');
    expect(only(verifyStore(store))).toMatchObject({
      records: 0,
      firstSeq: 0,
      ok: false,
      firstBroken: { seq: 1, reason: 'records 1–5 missing: the stream was acked up to seq 5' },
    });
  });

  it('catches a first record whose prev is not GENESIS', () => {
    const chain = intact();
    const body = bodyOf('stream-0001', 1);
    body['prev'] = sha256Hex('before time');
    body['hash'] = chainHash(body);
    rewrite('stream-0001', 1, body);
    expect(only(verifyStore(store)).firstBroken).toEqual({
      seq: 1,
      reason: `broken link: expected prev ${GENESIS} (GENESIS), got ${String(body['prev'])}`,
    });
    expect(chain.records[0]!.prev).toBe(GENESIS);
  });

  it('catches two records swapped in their rows', () => {
    intact();
    const third = bodyOf('stream-0001', 3);
    const fourth = bodyOf('stream-0001', 4);
    rewrite('stream-0001', 3, fourth);
    rewrite('stream-0001', 4, third);
    expect(only(verifyStore(store)).firstBroken).toEqual({ seq: 3, reason: 'body names stream stream-0001 seq 4, stored as stream stream-0001 seq 3' });
  });

  it('catches two records re-chained in swapped order: the record after them no longer links', () => {
    const chain = intact();
    // Whoever swaps 3 and 4 and re-hashes both cannot re-hash 5, which the agent chained to the real 4.
    const third = bodyOf('stream-0001', 3);
    const fourth = bodyOf('stream-0001', 4);
    const newThird: Record<string, unknown> = { ...fourth, seq: 3, prev: chain.records[1]!.hash };
    newThird['hash'] = chainHash(newThird);
    const newFourth: Record<string, unknown> = { ...third, seq: 4, prev: newThird['hash'] };
    newFourth['hash'] = chainHash(newFourth);
    rewrite('stream-0001', 3, newThird);
    rewrite('stream-0001', 4, newFourth);
    expect(only(verifyStore(store)).firstBroken).toEqual({
      seq: 5,
      reason: `broken link: expected prev ${String(newFourth['hash'])} (the hash of seq 4), got ${chain.records[3]!.hash}`,
    });
  });

  it('names the lowest broken seq when there are several, a gap found late included', () => {
    intact();
    const body = bodyOf('stream-0001', 4);
    body['time'] = '2026-03-01T09:00:00.000Z';
    rewrite('stream-0001', 4, body);
    tamper('DELETE FROM records WHERE stream = ? AND seq = 2', 'stream-0001');
    expect(only(verifyStore(store)).firstBroken?.seq).toBe(2);
  });

  describe('declared drops', () => {
    it('passes seqs the agent declared dropped, with matching hashes', () => {
      const chain = new TestChain('stream-0001');
      chain.event();
      const drop = chain.drop(2);
      chain.event();
      chain.declare(drop);
      chain.event();
      deliver(chain);
      expect(only(verifyStore(store))).toEqual({
        stream: 'stream-0001',
        agentId: 'ag-1',
        records: 4,
        firstSeq: 1,
        lastSeq: 6,
        declaredGaps: [[2, 3]],
        ok: true,
      });
    });

    it('passes a drop at the start of the stream and one declared by two abutting declarations', () => {
      const chain = new TestChain('stream-0001');
      const first = chain.drop(2);
      chain.declare(first);
      const a = chain.drop(1);
      const b = chain.drop(3);
      chain.event();
      chain.declare(b);
      chain.declare(a);
      deliver(chain);
      expect(only(verifyStore(store))).toMatchObject({ ok: true, firstSeq: 3, declaredGaps: [[1, 2], [4, 7]] });
    });

    it('passes a declaration that also covers records which did arrive', () => {
      // Sent and stored, then dropped by the agent before the ack reached it.
      const chain = new TestChain('stream-0001');
      chain.event();
      const sent = chain.event();
      const lost = chain.drop(2);
      chain.event();
      chain.declare({ ...lost, fromSeq: sent.seq, fromPrev: sent.prev });
      deliver(chain);
      expect(only(verifyStore(store))).toMatchObject({ ok: true, declaredGaps: [[3, 4]] });
    });

    it('catches a declaration whose FromPrev is not the hash before the gap', () => {
      const chain = new TestChain('stream-0001');
      chain.event();
      const drop = chain.drop(2);
      chain.event();
      const forged = sha256Hex('forged');
      chain.declare(drop, { FromPrev: forged });
      deliver(chain);
      const verdict = only(verifyStore(store));
      expect(verdict).toMatchObject({ ok: false, declaredGaps: [[2, 3]] });
      expect(verdict.firstBroken).toEqual({
        seq: 2,
        reason: `declaration hash mismatch: buffer_dropped at seq 5 declares seqs 2–3 with FromPrev ${forged}, but the hash before them is ${chain.records[0]!.hash}`,
      });
    });

    it('catches a declaration whose ToHash is not the prev after the gap', () => {
      const chain = new TestChain('stream-0001');
      chain.event();
      const drop = chain.drop(2);
      const after = chain.event();
      chain.declare(drop, { ToHash: sha256Hex('forged') });
      deliver(chain);
      expect(only(verifyStore(store)).firstBroken).toEqual({
        seq: 4,
        reason: `declaration hash mismatch: buffer_dropped at seq 5 declares seqs 2–3 with ToHash ${sha256Hex('forged')}, but seq 4 has prev ${after.prev}`,
      });
    });

    it('catches a declaration without the hashes to check it by', () => {
      const chain = new TestChain('stream-0001');
      chain.event();
      const drop = chain.drop(2);
      chain.event();
      chain.append({
        id: uuidv7(),
        time: chain.timeOf(5),
        host: chain.host,
        product: 'linux',
        category: 'agent',
        fields: { Action: 'buffer_dropped', Count: 2, FromSeq: drop.fromSeq, ToSeq: drop.toSeq },
      });
      deliver(chain);
      expect(only(verifyStore(store)).firstBroken).toMatchObject({ seq: 2, reason: expect.stringContaining('FromPrev (none)') });
    });

    it('catches abutting declarations that do not meet', () => {
      const chain = new TestChain('stream-0001');
      chain.event();
      const a = chain.drop(2);
      const b = chain.drop(2);
      chain.event();
      chain.declare(a);
      chain.declare(b, { FromPrev: sha256Hex('elsewhere') });
      deliver(chain);
      expect(only(verifyStore(store)).firstBroken).toMatchObject({ seq: 4, reason: expect.stringMatching(/^declaration hash mismatch: buffer_dropped at seq 7 declares seqs 2–3 ending with ToHash/) });
    });

    it('catches a gap a declaration covers only in part', () => {
      const chain = new TestChain('stream-0001');
      chain.event();
      const drop = chain.drop(3);
      chain.event();
      chain.declare({ ...drop, toSeq: 3 });
      deliver(chain);
      expect(only(verifyStore(store))).toMatchObject({
        ok: false,
        declaredGaps: [],
        firstBroken: { seq: 4, reason: 'undeclared gap: no buffer_dropped declaration in the store covers seq 4 (of seqs 2–4)' },
      });
    });

    it('catches a hole left between two declarations', () => {
      const chain = new TestChain('stream-0001');
      chain.event();
      const a = chain.drop(2);
      chain.drop(1);
      const b = chain.drop(2);
      chain.event();
      chain.declare(b);
      chain.declare(a);
      deliver(chain);
      expect(only(verifyStore(store)).firstBroken).toEqual({ seq: 4, reason: 'undeclared gap: no buffer_dropped declaration in the store covers seq 4 (of seqs 2–6)' });
    });

    it('does not let a declaration in one stream excuse a gap in another', () => {
      const a = new TestChain('stream-a-0001');
      a.event();
      const drop = a.drop(1);
      a.event();
      deliver(a);
      const b = new TestChain('stream-b-0001');
      b.event();
      b.declare(drop);
      deliver(b);
      expect(verifyStore(store).map((v) => [v.stream, v.ok, v.firstBroken?.seq])).toEqual([
        ['stream-a-0001', false, 2],
        ['stream-b-0001', true, undefined],
      ]);
    });
  });

  it('judges every stream on its own, with its owner', () => {
    const a = new TestChain('stream-a-0001');
    a.event();
    a.event();
    deliver(a, 'ag-a');
    const b = new TestChain('stream-b-0001');
    b.event();
    b.event();
    deliver(b, 'ag-b');
    tamper('DELETE FROM records WHERE stream = ? AND seq = 1', 'stream-a-0001');
    expect(verifyStore(store).map((v) => [v.stream, v.agentId, v.records, v.ok])).toEqual([
      ['stream-a-0001', 'ag-a', 1, false],
      ['stream-b-0001', 'ag-b', 2, true],
    ]);
  });
});
