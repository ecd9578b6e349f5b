// The contract every Store implementation passes (design.md §9): one vitest suite, run by each
// implementation's test against real databases, plus the helpers it uses to build valid hash chains.
import { createHash } from 'node:crypto';
import { v7 as uuidv7 } from 'uuid';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AlertRecord } from '../protocol/alert.ts';
import { chainHash, GENESIS } from '../protocol/chain.ts';
import type { Host, OmEvent } from '../protocol/envelope.ts';
import { isAlert, parseRecord, type WireRecord } from '../protocol/wire.ts';
import { ROLES, type CollectorAlert, type Commit, type IngestRecord, type Store } from './types.ts';

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** A record before the outbox numbers and chains it. */
export type RecordInput = Omit<OmEvent, 'stream' | 'seq' | 'hash' | 'prev'> | AlertRecord;

/** Seqs an agent dropped, with the chain values a buffer_dropped declaration carries. */
export interface Drop {
  fromSeq: number;
  toSeq: number;
  fromPrev: string;
  toHash: string;
}

/**
 * Builds one stream the way an agent's outbox does: seqs from 1, each record chained to the one before,
 * every record checked against the wire schema. `records` holds what was delivered (drops left out).
 */
export class TestChain {
  readonly stream: string;
  readonly records: WireRecord[] = [];
  host: Host;
  #seq = 0;
  #lastHash = GENESIS;
  #startMs: number;

  constructor(stream: string, options: { host?: Host; startTime?: string } = {}) {
    this.stream = stream;
    this.host = options.host ?? { id: 'host-0001', name: 'hmi-07' };
    this.#startMs = Date.parse(options.startTime ?? '2026-03-01T10:00:00.000Z');
  }

  /** The state a store holds once every delivered record is committed. */
  get state(): { ackedSeq: number; lastHash: string } {
    const last = this.records.at(-1);
    return last ? { ackedSeq: last.seq, lastHash: last.hash } : { ackedSeq: 0, lastHash: GENESIS };
  }

  /** By default each seq is one second after the start time. */
  timeOf(seq: number): string {
    return new Date(this.#startMs + seq * 1000).toISOString();
  }

  /** Numbers and chains the record and delivers it. */
  append(input: RecordInput): WireRecord {
    const record = this.#chain(input);
    this.records.push(record);
    return record;
  }

  event(options: { time?: string; host?: Host; sessionId?: string; commandLine?: string } = {}): WireRecord {
    return this.append({
      id: uuidv7(),
      time: options.time ?? this.timeOf(this.#seq + 1),
      host: options.host ?? this.host,
      product: 'linux',
      category: 'process_creation',
      fields: {
        ProcessId: 4242 + this.#seq,
        Image: '/usr/bin/bash',
        CommandLine: options.commandLine ?? 'bash -i',
        ParentProcessId: 4240,
        ParentImage: '/usr/sbin/sshd',
        User: 'vendor1',
        ...(options.sessionId === undefined ? {} : { SessionId: options.sessionId }),
      },
    });
  }

  alert(options: { time?: string; host?: Host | null; summary?: string; sessionId?: string } = {}): WireRecord {
    const host = options.host === undefined ? this.host : options.host;
    return this.append({
      id: uuidv7(),
      time: options.time ?? this.timeOf(this.#seq + 1),
      rule: { id: 'om-001', title: 'Remote shell outside the maintenance window', level: 'high', tags: ['attack.t1021'], author: 'omwatch' },
      eventIds: [uuidv7()],
      ...(host === null ? {} : { host }),
      summary: options.summary ?? 'vendor1 opened a shell on hmi-07',
      ...(options.sessionId === undefined ? {} : { sessionId: options.sessionId }),
    });
  }

  /** Makes `count` records (chained, as the agent made them) that are never delivered. */
  drop(count: number): Drop {
    const fromSeq = this.#seq + 1;
    const fromPrev = this.#lastHash;
    for (let i = 0; i < count; i++) {
      this.#chain({
        id: uuidv7(),
        time: this.timeOf(this.#seq + 1),
        host: this.host,
        product: 'linux',
        category: 'process_termination',
        fields: { ProcessId: 5000 + this.#seq, Image: '/usr/bin/sleep' },
      });
    }
    return { fromSeq, toSeq: this.#seq, fromPrev, toHash: this.#lastHash };
  }

  /** Delivers the agent's buffer_dropped declaration of a drop; `fields` overrides its details. */
  declare(drop: Drop, fields: Partial<{ FromSeq: number; ToSeq: number; FromPrev: string; ToHash: string; Count: number }> = {}): WireRecord {
    return this.append({
      id: uuidv7(),
      time: this.timeOf(this.#seq + 1),
      host: this.host,
      product: 'linux',
      category: 'agent',
      fields: {
        Action: 'buffer_dropped',
        Count: drop.toSeq - drop.fromSeq + 1,
        FromSeq: drop.fromSeq,
        ToSeq: drop.toSeq,
        FromPrev: drop.fromPrev,
        ToHash: drop.toHash,
        ...fields,
      },
    });
  }

  /** A commit of the given records (all delivered ones by default) with the state after the last. */
  commit(records: readonly WireRecord[] = this.records): Commit {
    const last = records.at(-1);
    return {
      stream: this.stream,
      records: records.map(toIngestRecord),
      state: last ? { ackedSeq: last.seq, lastHash: last.hash } : this.state,
    };
  }

  #chain(input: RecordInput): WireRecord {
    const unhashed = { ...input, stream: this.stream, seq: this.#seq + 1, prev: this.#lastHash };
    const candidate = { ...unhashed, hash: chainHash(unhashed) };
    const parsed = parseRecord(candidate);
    if (!parsed.ok) throw new Error(`TestChain ${this.stream} seq ${candidate.seq}: not a valid wire record: ${parsed.error}`);
    this.#seq = candidate.seq;
    this.#lastHash = candidate.hash;
    return candidate as WireRecord;
  }
}

/** A wire record as ingest hands it to the store. */
export function toIngestRecord(record: WireRecord): IngestRecord {
  if (isAlert(record)) {
    return {
      seq: record.seq,
      kind: 'alert',
      id: record.id,
      time: record.time,
      hostId: record.host?.id ?? null,
      category: null,
      sessionId: record.sessionId ?? null,
      hash: record.hash,
      prev: record.prev,
      body: JSON.stringify(record),
    };
  }
  const sessionId = (record.fields as { SessionId?: string }).SessionId;
  return {
    seq: record.seq,
    kind: 'event',
    id: record.id,
    time: record.time,
    hostId: record.host.id,
    category: record.category,
    sessionId: sessionId ?? null,
    hash: record.hash,
    prev: record.prev,
    body: JSON.stringify(record),
  };
}

export function testCollectorAlert(overrides: Partial<CollectorAlert> = {}): CollectorAlert {
  return {
    id: uuidv7(),
    time: '2026-03-01T11:00:00.000Z',
    type: 'chain_broken',
    agentId: null,
    stream: null,
    summary: 'seqs missing and not declared dropped',
    details: JSON.stringify({ fromSeq: 3, toSeq: 4 }),
    ...overrides,
  };
}

export interface OpenedStore {
  store: Store;
  /** Closes the store (if still open) and opens the same database again. */
  reopen: () => Promise<Store>;
  /** Closes whatever store is open and removes the database. */
  cleanup: () => Promise<void>;
}

/**
 * Registers the contract suite for one implementation; `open` gives a fresh, empty database per test.
 * Beyond behaviour it asks that a refusal names what it refused: the token, agent or alert id, or `seq N`.
 */
export function storeContract(name: string, open: () => Promise<OpenedStore>): void {
  describe(`Store contract: ${name}`, () => {
    let opened: OpenedStore;
    let store: Store;

    beforeEach(async () => {
      opened = await open();
      store = opened.store;
    });
    afterEach(async () => {
      await opened.cleanup();
    });

    function enroll(id: string, hostId: string | null = `${id}-host`): void {
      store.createAgent({ id, name: `${id}-name`, hostId, keyHash: sha256Hex(`key of ${id}`), enrolledWith: 'tok-enroll' });
    }

    /** Everything a store holds, in its read order, to compare before and after. */
    function snapshot(target: Store = store) {
      return {
        tokens: target.listTokens(),
        agents: target.listAgents(),
        streams: target.streams(),
        records: [...target.records()],
        gaps: target.gaps(),
        alerts: target.collectorAlerts(),
        counts: target.counts(),
      };
    }

    describe('tokens', () => {
      it('creates a token, finds it by the hash of its secret, lists it', () => {
        const before = Date.now();
        const token = store.createToken({ id: 'tok-1', role: 'analyst', name: 'soc desk', secretHash: sha256Hex('s1') });
        expect(token).toMatchObject({ id: 'tok-1', role: 'analyst', name: 'soc desk', revokedAt: null, lastUsedAt: null });
        expect(Date.parse(token.createdAt)).toBeGreaterThanOrEqual(before - 1);
        expect(Date.parse(token.createdAt)).toBeLessThanOrEqual(Date.now() + 1);
        expect(store.tokenBySecretHash(sha256Hex('s1'))).toEqual(token);
        expect(store.tokenBySecretHash(sha256Hex('s2'))).toBeUndefined();
        expect(store.listTokens()).toEqual([token]);
      });

      it('takes every role and refuses one outside ROLES', () => {
        for (const role of ROLES) store.createToken({ id: `tok-${role}`, role, name: role, secretHash: sha256Hex(role) });
        expect(store.listTokens().map((t) => t.role).sort()).toEqual([...ROLES].sort());
        expect(() => store.createToken({ id: 'tok-x', role: 'agent' as never, name: 'x', secretHash: sha256Hex('x') })).toThrow('tok-x');
        expect(store.listTokens()).toHaveLength(ROLES.length);
      });

      it('refuses a second token with the same secret hash or id', () => {
        store.createToken({ id: 'tok-1', role: 'admin', name: 'a', secretHash: sha256Hex('same') });
        expect(() => store.createToken({ id: 'tok-2', role: 'auditor', name: 'b', secretHash: sha256Hex('same') })).toThrow('tok-2');
        expect(() => store.createToken({ id: 'tok-1', role: 'auditor', name: 'b', secretHash: sha256Hex('other') })).toThrow('tok-1');
        expect(store.listTokens().map((t) => t.id)).toEqual(['tok-1']);
      });

      it('revokes once: true while active, false after, false for an unknown id; a revoked token is still found', () => {
        store.createToken({ id: 'tok-1', role: 'admin', name: 'a', secretHash: sha256Hex('s1') });
        store.createToken({ id: 'tok-2', role: 'admin', name: 'b', secretHash: sha256Hex('s2') });
        expect(store.revokeToken('tok-1')).toBe(true);
        const revokedAt = store.tokenBySecretHash(sha256Hex('s1'))?.revokedAt;
        expect(Date.parse(revokedAt ?? '')).not.toBeNaN();
        expect(store.revokeToken('tok-1')).toBe(false);
        expect(store.tokenBySecretHash(sha256Hex('s1'))?.revokedAt).toBe(revokedAt);
        expect(store.revokeToken('tok-nope')).toBe(false);
        expect(store.tokenBySecretHash(sha256Hex('s2'))?.revokedAt).toBeNull();
      });

      it('touch records the last use', () => {
        store.createToken({ id: 'tok-1', role: 'auditor', name: 'a', secretHash: sha256Hex('s1') });
        store.touchToken('tok-1', '2026-03-01T10:00:00.000Z');
        store.touchToken('tok-1', '2026-03-01T10:05:00.000Z');
        expect(store.tokenBySecretHash(sha256Hex('s1'))?.lastUsedAt).toBe('2026-03-01T10:05:00.000Z');
        expect(store.listTokens()[0]?.lastUsedAt).toBe('2026-03-01T10:05:00.000Z');
      });
    });

    describe('agents', () => {
      it('creates an agent, finds it by key hash and by id, lists it', () => {
        const agent = store.createAgent({ id: 'ag-1', name: 'hmi-07', hostId: 'machine-1', keyHash: sha256Hex('k1'), enrolledWith: 'tok-enroll' });
        expect(agent).toMatchObject({ id: 'ag-1', name: 'hmi-07', hostId: 'machine-1', revokedAt: null, lastSeenAt: null });
        expect(Date.parse(agent.enrolledAt)).not.toBeNaN();
        expect(store.agentByKeyHash(sha256Hex('k1'))).toEqual(agent);
        expect(store.agent('ag-1')).toEqual(agent);
        expect(store.agentByKeyHash(sha256Hex('k2'))).toBeUndefined();
        expect(store.agent('ag-2')).toBeUndefined();
        store.createAgent({ id: 'ag-2', name: 'eng-ws', hostId: null, keyHash: sha256Hex('k2'), enrolledWith: 'tok-enroll' });
        expect(store.listAgents().map((a) => [a.id, a.hostId]).sort()).toEqual([['ag-1', 'machine-1'], ['ag-2', null]]);
      });

      it('refuses a second agent with the same key hash or id', () => {
        enroll('ag-1');
        expect(() => store.createAgent({ id: 'ag-2', name: 'x', hostId: null, keyHash: sha256Hex('key of ag-1'), enrolledWith: 't' })).toThrow('ag-2');
        expect(() => store.createAgent({ id: 'ag-1', name: 'x', hostId: null, keyHash: sha256Hex('fresh'), enrolledWith: 't' })).toThrow('ag-1');
        expect(store.listAgents()).toHaveLength(1);
      });

      it('revokes once and records when it was last seen', () => {
        enroll('ag-1');
        enroll('ag-2');
        expect(store.revokeAgent('ag-1')).toBe(true);
        expect(store.revokeAgent('ag-1')).toBe(false);
        expect(store.revokeAgent('ag-nope')).toBe(false);
        expect(Date.parse(store.agent('ag-1')?.revokedAt ?? '')).not.toBeNaN();
        expect(store.agent('ag-2')?.revokedAt).toBeNull();
        store.agentSeen('ag-2', '2026-03-01T10:00:00.000Z');
        expect(store.agent('ag-2')?.lastSeenAt).toBe('2026-03-01T10:00:00.000Z');
        expect(store.agentByKeyHash(sha256Hex('key of ag-2'))?.lastSeenAt).toBe('2026-03-01T10:00:00.000Z');
      });
    });

    describe('streams', () => {
      it('claims a new stream at seq 0 and GENESIS; a second agent gets the owner’s state back', () => {
        enroll('ag-1');
        enroll('ag-2');
        expect(store.stream('stream-0001')).toBeUndefined();
        const claimed = store.claimStream('stream-0001', 'ag-1');
        expect(claimed).toEqual({ stream: 'stream-0001', agentId: 'ag-1', ackedSeq: 0, lastHash: GENESIS });
        const chain = new TestChain('stream-0001');
        chain.event();
        store.commit(chain.commit());
        const state = { stream: 'stream-0001', agentId: 'ag-1', ...chain.state };
        expect(store.claimStream('stream-0001', 'ag-2')).toEqual(state);
        expect(store.claimStream('stream-0001', 'ag-1')).toEqual(state);
        expect(store.stream('stream-0001')).toEqual(state);
        expect(store.streams()).toEqual([state]);
      });

      it('lists streams by id', () => {
        enroll('ag-1');
        for (const id of ['stream-c', 'stream-a', 'stream-b']) store.claimStream(`${id}-0001`, 'ag-1');
        expect(store.streams().map((s) => s.stream)).toEqual(['stream-a-0001', 'stream-b-0001', 'stream-c-0001']);
      });

      it('refuses to claim a stream for an agent that was never enrolled', () => {
        expect(() => store.claimStream('stream-0001', 'ag-ghost')).toThrow('ag-ghost');
        expect(store.streams()).toEqual([]);
      });
    });

    describe('commit', () => {
      it('stores the records with stream, owner and receivedAt, and advances the state', () => {
        enroll('ag-1');
        store.claimStream('stream-0001', 'ag-1');
        const chain = new TestChain('stream-0001');
        chain.event({ sessionId: 'ssh-1' });
        chain.alert();
        const before = Date.now();
        store.commit(chain.commit());
        const after = Date.now();
        const stored = [...store.records()];
        expect(stored.map(({ receivedAt: _r, ...rest }) => rest)).toEqual(
          chain.records.map((r) => ({ ...toIngestRecord(r), stream: 'stream-0001', agentId: 'ag-1' })),
        );
        expect(stored[0]?.sessionId).toBe('ssh-1');
        for (const record of stored) {
          expect(Date.parse(record.receivedAt)).toBeGreaterThanOrEqual(before - 1);
          expect(Date.parse(record.receivedAt)).toBeLessThanOrEqual(after + 1);
        }
        expect(store.stream('stream-0001')).toEqual({ stream: 'stream-0001', agentId: 'ag-1', ...chain.state });
      });

      it('is idempotent: the same batch twice is stored once', () => {
        enroll('ag-1');
        store.claimStream('stream-0001', 'ag-1');
        const chain = new TestChain('stream-0001');
        chain.event();
        chain.event();
        chain.alert();
        const commit = { ...chain.commit(), alerts: [testCollectorAlert({ stream: 'stream-0001' })] };
        store.commit(commit);
        const first = snapshot();
        store.commit(commit);
        expect(snapshot()).toEqual(first);
        expect(store.counts().records).toBe(3);
        expect(store.collectorAlerts()).toHaveLength(1);
      });

      it('never replaces a stored (stream, seq) and still stores the new ones', () => {
        enroll('ag-1');
        store.claimStream('stream-0001', 'ag-1');
        const chain = new TestChain('stream-0001');
        chain.event({ commandLine: 'original' });
        chain.event();
        store.commit(chain.commit());
        const original = [...store.records()];
        chain.event();
        const forged = { ...toIngestRecord(chain.records[0]!), body: '{"forged":true}', hash: sha256Hex('forged') };
        const next = chain.commit(chain.records.slice(1));
        store.commit({ ...next, records: [forged, ...next.records] });
        const stored = [...store.records()];
        expect(stored.map((r) => r.seq)).toEqual([1, 2, 3]);
        expect(stored.slice(0, 2)).toEqual(original);
        expect(store.stream('stream-0001')?.ackedSeq).toBe(3);
      });

      it('never moves the acked mark back', () => {
        enroll('ag-1');
        store.claimStream('stream-0001', 'ag-1');
        const chain = new TestChain('stream-0001');
        chain.event();
        const early = chain.commit();
        chain.event();
        store.commit(chain.commit());
        store.commit(early);
        expect(store.stream('stream-0001')).toMatchObject(chain.state);
      });

      it('is atomic: a record the schema refuses leaves nothing of the commit', () => {
        enroll('ag-1');
        store.claimStream('stream-0001', 'ag-1');
        const chain = new TestChain('stream-0001');
        chain.event();
        store.commit(chain.commit());
        const before = snapshot();
        chain.event();
        chain.event();
        chain.event();
        const good = chain.commit(chain.records.slice(1));
        const bad: Commit = {
          ...good,
          records: good.records.map((r, i) => (i === 1 ? { ...r, body: null as unknown as string } : r)),
          gapsOpened: [{ fromSeq: 10, toSeq: 11, beforeHash: sha256Hex('b'), afterPrev: sha256Hex('a'), openedAt: '2026-03-01T10:00:00.000Z' }],
          alerts: [testCollectorAlert()],
        };
        expect(() => store.commit(bad)).toThrow(/\bseq 3\b/);
        expect(snapshot()).toEqual(before);
        // The same batch, whole, goes in afterwards.
        store.commit(good);
        expect(store.counts().records).toBe(4);
      });

      it('commits the batches of several streams together, all or none (group commit)', () => {
        enroll('ag-1');
        enroll('ag-2');
        store.claimStream('stream-0001', 'ag-1');
        store.claimStream('stream-0002', 'ag-2');
        const one = new TestChain('stream-0001');
        const two = new TestChain('stream-0002');
        one.event();
        one.event();
        two.event();
        const first = one.commit(one.records.slice(0, 1));
        const second = one.commit();
        store.commitMany([first, second, two.commit()]);
        expect(store.stream('stream-0001')).toMatchObject(one.state);
        expect(store.stream('stream-0002')).toMatchObject(two.state);
        expect(store.counts().records).toBe(3);
        const before = snapshot();
        two.event();
        const good = two.commit(two.records.slice(1));
        const bad: Commit = { ...good, records: good.records.map((r) => ({ ...r, body: null as unknown as string })) };
        one.event();
        expect(() => store.commitMany([one.commit(one.records.slice(2)), bad])).toThrow(/stream-0002/);
        expect(snapshot()).toEqual(before);
      });

      it('is atomic: a bad collector alert at the end leaves nothing of the commit', () => {
        enroll('ag-1');
        store.claimStream('stream-0001', 'ag-1');
        const before = snapshot();
        const chain = new TestChain('stream-0001');
        chain.event();
        const alert = testCollectorAlert({ type: 'bogus' as never });
        const bad: Commit = { ...chain.commit(), alerts: [alert] };
        expect(() => store.commit(bad)).toThrow(alert.id);
        expect(snapshot()).toEqual(before);
      });

      it('refuses a commit to a stream never claimed, and one declaring a gap never opened', () => {
        enroll('ag-1');
        const chain = new TestChain('stream-0001');
        chain.event();
        expect(() => store.commit(chain.commit())).toThrow(/stream-0001/);
        expect(store.counts().records).toBe(0);
        store.claimStream('stream-0001', 'ag-1');
        const before = snapshot();
        expect(() => store.commit({ ...chain.commit(), gapsDeclared: [7] })).toThrow(/\bseq 7\b/);
        expect(snapshot()).toEqual(before);
      });

      it('lets a commit run while records() is being read', () => {
        enroll('ag-1');
        store.claimStream('stream-0001', 'ag-1');
        const chain = new TestChain('stream-0001');
        for (let i = 0; i < 5; i++) chain.event();
        store.commit(chain.commit());
        const iterator = store.records();
        const seen = [iterator.next().value?.seq];
        chain.event();
        store.commit(chain.commit(chain.records.slice(-1)));
        for (let next = iterator.next(); !next.done; next = iterator.next()) seen.push(next.value.seq);
        // Whether the open read sees seq 6 is the implementation's choice; seqs 1–5 it must see, once.
        expect(seen.slice(0, 5)).toEqual([1, 2, 3, 4, 5]);
        expect(new Set(seen).size).toBe(seen.length);
        expect(store.counts().records).toBe(6);
      });

      it('frees a read left early', () => {
        enroll('ag-1');
        store.claimStream('stream-0001', 'ag-1');
        const chain = new TestChain('stream-0001');
        for (let i = 0; i < 3; i++) chain.event();
        store.commit(chain.commit());
        for (const record of store.records()) if (record.seq === 1) break;
        chain.event();
        store.commit(chain.commit(chain.records.slice(-1)));
        expect([...store.records()].map((r) => r.seq)).toEqual([1, 2, 3, 4]);
      });
    });

    it('keeps everything across a reopen', async () => {
      store.createToken({ id: 'tok-1', role: 'admin', name: 'a', secretHash: sha256Hex('s1') });
      store.createToken({ id: 'tok-2', role: 'auditor', name: 'b', secretHash: sha256Hex('s2') });
      store.revokeToken('tok-2');
      store.touchToken('tok-1', '2026-03-01T10:00:00.000Z');
      enroll('ag-1');
      store.agentSeen('ag-1', '2026-03-01T10:00:01.000Z');
      store.claimStream('stream-0001', 'ag-1');
      const chain = new TestChain('stream-0001');
      chain.event();
      const drop = chain.drop(2);
      chain.event();
      chain.alert();
      const [first, ...rest] = chain.records;
      store.commit(chain.commit([first!]));
      store.commit({
        ...chain.commit(rest),
        gapsOpened: [{ fromSeq: drop.fromSeq, toSeq: drop.toSeq, beforeHash: drop.fromPrev, afterPrev: rest[0]!.prev, openedAt: '2026-03-01T10:00:05.000Z' }],
        alerts: [testCollectorAlert({ agentId: 'ag-1', stream: 'stream-0001' })],
      });
      store.markGapAlerted('stream-0001', drop.fromSeq, '2026-03-01T10:10:00.000Z', testCollectorAlert({ time: '2026-03-01T10:10:00.000Z' }));
      const before = snapshot();
      expect(before.counts).toEqual({ records: 3, alerts: 1, streams: 1, agents: 1 });
      store.close();
      const reopened = await opened.reopen();
      expect(snapshot(reopened)).toEqual(before);
    });

    describe('pages, triage and the access log (the API)', () => {
      function seedAlerts() {
        enroll('ag-a');
        store.claimStream('stream-a-0001', 'ag-a');
        const chain = new TestChain('stream-a-0001', { host: { id: 'h1', name: 'hmi-1' } });
        for (let i = 0; i < 5; i++) {
          chain.event({ sessionId: i % 2 === 0 ? 'sess-even-01' : 'sess-odd-001' });
          chain.alert({ summary: `alert ${i}`, ...(i % 2 === 0 ? { sessionId: 'sess-even-01' } : {}) });
        }
        store.commit(chain.commit());
        return chain;
      }

      it('pages alerts newest first with a cursor, and filters by host, level, rule, session and state', () => {
        const chain = seedAlerts();
        const first = store.alertPage({ limit: 2 });
        expect(first.map((a) => JSON.parse(a.record.body).summary)).toEqual(['alert 4', 'alert 3']);
        const last = first.at(-1)!.record;
        const second = store.alertPage({ limit: 10, before: { timeMs: Date.parse(last.time), stream: last.stream, seq: last.seq } });
        expect(second.map((a) => JSON.parse(a.record.body).summary)).toEqual(['alert 2', 'alert 1', 'alert 0']);
        expect(store.alertPage({ limit: 10, host: 'h1' })).toHaveLength(5);
        expect(store.alertPage({ limit: 10, host: 'hmi-9' })).toHaveLength(0);
        expect(store.alertPage({ limit: 10, levels: ['high', 'critical'] })).toHaveLength(5);
        expect(store.alertPage({ limit: 10, levels: ['low'] })).toHaveLength(0);
        expect(store.alertPage({ limit: 10, rule: 'om-001' })).toHaveLength(5);
        expect(store.alertPage({ limit: 10, rule: 'Remote shell outside the maintenance window' })).toHaveLength(5);
        expect(store.alertPage({ limit: 10, sessionId: 'sess-even-01' })).toHaveLength(3);
        const alertId = JSON.parse(first[0]!.record.body).id as string;
        store.triage({ alertId, at: '2026-03-01T11:00:00.000Z', by: 'analyst:alice', action: 'close', state: 'closed', assignee: null, comment: 'benign' });
        expect(store.alertPage({ limit: 10, state: 'closed' }).map((a) => a.record.id)).toEqual([alertId]);
        expect(store.alertPage({ limit: 10, state: 'open' })).toHaveLength(4);
        expect(store.recordById(alertId, 'alert')?.seq).toBe(chain.records.find((r) => r.id === alertId)!.seq);
        expect(store.recordById(alertId, 'event')).toBeUndefined();
      });

      it('pages events newest first and finds a stream\'s records by id', () => {
        const chain = seedAlerts();
        const events = store.eventPage({ limit: 3, category: 'process_creation' });
        expect(events.map((e) => e.seq)).toEqual([9, 7, 5]);
        expect(store.eventPage({ limit: 10, sessionId: 'sess-odd-001' }).map((e) => e.seq)).toEqual([7, 3]);
        const ids = [chain.records[2]!.id, chain.records[0]!.id];
        expect(store.recordsByIds('stream-a-0001', ids).map((r) => r.seq)).toEqual([1, 3]);
        expect(store.recordsByIds('stream-other', ids)).toEqual([]);
      });

      it('keeps every triage step and the current state', () => {
        expect(store.triageOf('a-1')).toEqual({ state: 'open', assignee: null, history: [] });
        store.triage({ alertId: 'a-1', at: '2026-03-01T11:00:00.000Z', by: 'analyst:alice', action: 'assign', state: 'acknowledged', assignee: 'bob', comment: null });
        store.triage({ alertId: 'a-1', at: '2026-03-01T11:01:00.000Z', by: 'analyst:bob', action: 'close', state: 'closed', assignee: 'bob', comment: 'vendor work, ticket CHG-1' });
        const triage = store.triageOf('a-1');
        expect(triage.state).toBe('closed');
        expect(triage.history.map((h) => [h.by, h.action, h.comment])).toEqual([['analyst:alice', 'assign', null], ['analyst:bob', 'close', 'vendor work, ticket CHG-1']]);
      });

      it('gives the newest collector alerts first, as many as asked', () => {
        for (let i = 0; i < 3; i++) store.addAlert(testCollectorAlert({ id: `ca-${i}`, time: `2026-03-01T10:00:0${i}.000Z` }));
        expect(store.collectorAlerts({ newestFirst: true, limit: 2 }).map((a) => a.id)).toEqual(['ca-2', 'ca-1']);
        expect(store.collectorAlerts({ since: '2026-03-01T10:00:01.000Z' }).map((a) => a.id)).toEqual(['ca-1', 'ca-2']);
      });

      it('appends to the access log and pages it newest first', () => {
        for (let i = 0; i < 3; i++) store.logAccess({ at: `2026-03-01T11:00:0${i}.000Z`, tokenId: 'tok-1', by: 'auditor:carol', action: 'GET /api/v1/sessions/:id', target: `s-${i}`, status: 200 });
        const newest = store.accessLog({ limit: 2 });
        expect(newest.map((e) => e.target)).toEqual(['s-2', 's-1']);
        expect(store.accessLog({ limit: 5, beforeId: newest[1]!.id }).map((e) => e.target)).toEqual(['s-0']);
      });
    });

    describe('records()', () => {
      // Two agents, three hosts, events and alerts, times of mixed precision (text order is not time order).
      function seed() {
        enroll('ag-a');
        enroll('ag-b');
        store.claimStream('stream-a-0001', 'ag-a');
        store.claimStream('stream-b-0001', 'ag-b');
        const h1 = { id: 'h1', name: 'hmi-1' };
        const a = new TestChain('stream-a-0001', { host: h1 });
        a.event({ time: '2026-03-01T10:00:00Z' });
        a.alert({ time: '2026-03-01T10:00:00.500Z' });
        a.event({ time: '2026-03-01T10:00:01Z', host: { id: 'h2', name: 'hmi-2' } });
        a.event({ time: '2026-03-01T10:00:02.250Z' });
        const b = new TestChain('stream-b-0001', { host: { id: 'h3', name: 'eng-3' } });
        b.event({ time: '2026-03-01T10:00:00.250Z' });
        b.alert({ time: '2026-03-01T10:00:03Z', host: null });
        // Committed out of order: reads are still in (stream, seq) order.
        store.commit(b.commit());
        store.commit(a.commit([a.records[2]!, a.records[3]!]));
        store.commit(a.commit([a.records[0]!, a.records[1]!]));
      }
      const keys = (filter: Parameters<Store['records']>[0]) => [...store.records(filter)].map((r) => `${r.stream.slice(7, 8)}${r.seq}`);

      it('reads everything in (stream, seq) order', () => {
        seed();
        expect(keys({})).toEqual(['a1', 'a2', 'a3', 'a4', 'b1', 'b2']);
        expect(keys(undefined)).toEqual(['a1', 'a2', 'a3', 'a4', 'b1', 'b2']);
      });

      it('filters by stream, agent, host and kind', () => {
        seed();
        expect(keys({ stream: 'stream-b-0001' })).toEqual(['b1', 'b2']);
        expect(keys({ agentId: 'ag-a' })).toEqual(['a1', 'a2', 'a3', 'a4']);
        expect(keys({ agentId: 'ag-b' })).toEqual(['b1', 'b2']);
        expect(keys({ hostId: 'h1' })).toEqual(['a1', 'a2', 'a4']);
        expect(keys({ hostId: 'h3' })).toEqual(['b1']);
        expect(keys({ kind: 'alert' })).toEqual(['a2', 'b2']);
        expect(keys({ kind: 'event' })).toEqual(['a1', 'a3', 'a4', 'b1']);
        expect(keys({ agentId: 'ag-nobody' })).toEqual([]);
      });

      it('filters by time as instants: since inclusive, until exclusive', () => {
        seed();
        expect(keys({ since: '2026-03-01T10:00:00.250Z' })).toEqual(['a2', 'a3', 'a4', 'b1', 'b2']);
        expect(keys({ until: '2026-03-01T10:00:01.000Z' })).toEqual(['a1', 'a2', 'b1']);
        expect(keys({ since: '2026-03-01T10:00:00.400Z', until: '2026-03-01T10:00:02.250Z' })).toEqual(['a2', 'a3']);
        expect(keys({ since: '2026-03-01T10:00:03Z' })).toEqual(['b2']);
      });

      it('filters by category and by seq (the tail of a stream)', () => {
        enroll('ag-a');
        store.claimStream('stream-a-0001', 'ag-a');
        const a = new TestChain('stream-a-0001');
        a.event();
        a.declare(a.drop(2));
        a.event();
        a.declare(a.drop(1));
        store.commit(a.commit());
        expect(keys({ stream: 'stream-a-0001', category: 'agent' })).toEqual(['a4', 'a7']);
        expect(keys({ stream: 'stream-a-0001', category: 'agent', afterSeq: 4 })).toEqual(['a7']);
        expect(keys({ stream: 'stream-a-0001', afterSeq: 5 })).toEqual(['a7']);
      });

      it('filters by session: its events and its alerts, in order', () => {
        enroll('ag-a');
        store.claimStream('stream-a-0001', 'ag-a');
        const a = new TestChain('stream-a-0001');
        a.event({ sessionId: 'shell-one' });
        a.event({ sessionId: 'shell-two' });
        a.event();
        a.alert({ sessionId: 'shell-one' });
        a.event({ sessionId: 'shell-one' });
        store.commit(a.commit());
        expect(keys({ sessionId: 'shell-one' })).toEqual(['a1', 'a4', 'a5']);
        expect(keys({ sessionId: 'shell-one', kind: 'event' })).toEqual(['a1', 'a5']);
        expect(keys({ sessionId: 'shell-one', category: 'process_creation' })).toEqual(['a1', 'a5']);
        expect(keys({ sessionId: 'shell-none' })).toEqual([]);
      });

      it('combines filters', () => {
        seed();
        expect(keys({ agentId: 'ag-a', kind: 'event', since: '2026-03-01T10:00:00.400Z' })).toEqual(['a3', 'a4']);
        expect(keys({ stream: 'stream-a-0001', hostId: 'h2' })).toEqual(['a3']);
        expect(keys({ agentId: 'ag-b', hostId: 'h1' })).toEqual([]);
      });
    });

    describe('gaps', () => {
      function gapped() {
        enroll('ag-1');
        store.claimStream('stream-0001', 'ag-1');
        const chain = new TestChain('stream-0001');
        chain.event();
        const drop = chain.drop(2);
        const after = chain.event();
        const gap = { fromSeq: drop.fromSeq, toSeq: drop.toSeq, beforeHash: drop.fromPrev, afterPrev: after.prev, openedAt: '2026-03-01T10:00:05.000Z' };
        store.commit({ ...chain.commit(), gapsOpened: [gap] });
        return { chain, drop, gap };
      }

      it('opens a gap with the hashes around it, neither declared nor alerted', () => {
        const { gap } = gapped();
        expect(store.gaps()).toEqual([{ stream: 'stream-0001', ...gap, declaredAt: null, alertedAt: null }]);
        expect(store.gaps('stream-0001')).toEqual(store.gaps());
        expect(store.gaps('stream-other')).toEqual([]);
      });

      it('keeps the first opening when the same gap is opened again', () => {
        const { chain, gap } = gapped();
        store.commit({ ...chain.commit(), gapsOpened: [{ ...gap, openedAt: '2026-03-01T12:00:00.000Z' }] });
        expect(store.gaps()).toEqual([{ stream: 'stream-0001', ...gap, declaredAt: null, alertedAt: null }]);
      });

      it('marks a gap declared by a later commit', () => {
        const { chain, drop } = gapped();
        const declaration = chain.declare(drop);
        store.commit({ ...chain.commit([declaration]), gapsDeclared: [drop.fromSeq] });
        const [gap] = store.gaps();
        expect(Date.parse(gap?.declaredAt ?? '')).not.toBeNaN();
        expect(gap?.alertedAt).toBeNull();
      });

      it('opens and declares a gap in one commit', () => {
        enroll('ag-1');
        store.claimStream('stream-0001', 'ag-1');
        const chain = new TestChain('stream-0001');
        const drop = chain.drop(3);
        const declaration = chain.declare(drop);
        store.commit({
          ...chain.commit(),
          gapsOpened: [{ fromSeq: 1, toSeq: 3, beforeHash: GENESIS, afterPrev: declaration.prev, openedAt: '2026-03-01T10:00:05.000Z' }],
          gapsDeclared: [1],
        });
        expect(store.gaps()).toMatchObject([{ fromSeq: 1, toSeq: 3, alertedAt: null }]);
        expect(store.gaps()[0]?.declaredAt).not.toBeNull();
      });

      it('marks a gap alerted with its alert, once', () => {
        const { drop } = gapped();
        const alert = testCollectorAlert({ agentId: 'ag-1', stream: 'stream-0001', time: '2026-03-01T10:10:00.000Z' });
        store.markGapAlerted('stream-0001', drop.fromSeq, alert.time, alert);
        expect(store.gaps()[0]?.alertedAt).toBe('2026-03-01T10:10:00.000Z');
        expect(store.collectorAlerts()).toEqual([alert]);
        store.markGapAlerted('stream-0001', drop.fromSeq, '2026-03-01T10:20:00.000Z', testCollectorAlert({ time: '2026-03-01T10:20:00.000Z' }));
        expect(store.gaps()[0]?.alertedAt).toBe('2026-03-01T10:10:00.000Z');
        expect(store.collectorAlerts()).toEqual([alert]);
      });

      it('refuses to alert a gap that was never opened, and adds no alert', () => {
        gapped();
        expect(() => store.markGapAlerted('stream-0001', 99, '2026-03-01T10:10:00.000Z', testCollectorAlert())).toThrow(/\bseq 99\b/);
        expect(store.collectorAlerts()).toEqual([]);
      });
    });

    describe('collector alerts', () => {
      it('adds alerts, reads them by time, filters since (inclusive) and until (exclusive)', () => {
        enroll('ag-1');
        const late = testCollectorAlert({ time: '2026-03-01T12:00:00Z', type: 'agent_offline', agentId: 'ag-1' });
        const early = testCollectorAlert({ time: '2026-03-01T10:00:00.000Z' });
        const middle = testCollectorAlert({ time: '2026-03-01T11:00:00.500Z', stream: 'stream-0001', details: '{"seq":4}' });
        store.addAlert(late);
        store.addAlert(early);
        store.addAlert(middle);
        expect(store.collectorAlerts()).toEqual([early, middle, late]);
        expect(store.collectorAlerts({ since: '2026-03-01T11:00:00.500Z' })).toEqual([middle, late]);
        expect(store.collectorAlerts({ until: '2026-03-01T12:00:00.000Z' })).toEqual([early, middle]);
        expect(store.collectorAlerts({ since: '2026-03-01T10:00:00.001Z', until: '2026-03-01T11:59:59Z' })).toEqual([middle]);
      });

      it('skips an alert id already stored', () => {
        const alert = testCollectorAlert();
        store.addAlert(alert);
        store.addAlert({ ...alert, summary: 'changed' });
        expect(store.collectorAlerts()).toEqual([alert]);
      });
    });

    it('counts records, the alerts among them, streams and agents', () => {
      expect(store.counts()).toEqual({ records: 0, alerts: 0, streams: 0, agents: 0 });
      enroll('ag-1');
      enroll('ag-2');
      store.claimStream('stream-0001', 'ag-1');
      store.claimStream('stream-0002', 'ag-2');
      const chain = new TestChain('stream-0001');
      chain.event();
      chain.alert();
      chain.alert();
      store.commit(chain.commit());
      store.addAlert(testCollectorAlert());
      expect(store.counts()).toEqual({ records: 3, alerts: 2, streams: 2, agents: 2 });
    });
  });
}
