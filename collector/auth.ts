// Secrets the collector issues (role tokens and agent keys) and how it recognizes them: 256-bit random,
// shown once, stored only as their SHA-256 (design.md §4). Looking a secret up by its hash is the
// constant-time comparison: what an index lookup's timing can reveal is about the hash, not the secret.
import { createHash, randomBytes } from 'node:crypto';
import type { Agent, Role, Store, Token } from './store/types.ts';

/** A new secret: a readable prefix (what it is, never who) and 256 random bits. */
export function newSecret(prefix: 'omwt' | 'omwk'): string {
  return `${prefix}_${randomBytes(32).toString('base64url')}`;
}

export function secretHash(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** The bearer secret of an `Authorization` header, or undefined. */
export function bearer(header: string | undefined): string | undefined {
  const match = /^Bearer ([A-Za-z0-9_-]{16,128})$/.exec(header ?? '');
  return match?.[1];
}

/** The active token with this secret, if its role is one of `roles`. */
export function tokenFor(store: Store, secret: string | undefined, roles: readonly Role[]): Token | undefined {
  if (!secret) return undefined;
  const hash = secretHash(secret);
  const token = store.tokenBySecretHash(hash);
  return token && token.revokedAt === null && roles.includes(token.role) ? token : undefined;
}

/** The enrolled, unrevoked agent with this key. */
export function agentFor(store: Store, key: string | undefined): Agent | undefined {
  if (!key) return undefined;
  const agent = store.agentByKeyHash(secretHash(key));
  return agent && agent.revokedAt === null ? agent : undefined;
}
