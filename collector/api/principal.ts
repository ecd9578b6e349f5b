// Who is asking: a bearer token (API clients, the CLI) or a browser's login session (the dashboard).
// A login keeps only the token's hash, so a token revoked or rotated ends its logins at the next request;
// mutating requests of a login must carry its CSRF token, and browser requests must come from our origin.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { bearer, secretHash } from '../auth.ts';
import type { Store, Token } from '../store/types.ts';
import { API_ROLES, type ApiRole } from './access.ts';

export const SESSION_COOKIE = 'omwatch_session';
export const CSRF_HEADER = 'x-omwatch-csrf';

export interface Principal {
  token: Token & { role: ApiRole };
  via: 'bearer' | 'login';
  /** The login's CSRF token (logins only). */
  csrf?: string;
  /** The login's id (logins only), to end it. */
  loginId?: string;
}

interface Login {
  tokenHash: string;
  csrf: string;
  createdAtMs: number;
  lastUsedMs: number;
}

export interface LoginOptions {
  /** A login unused this long ends. */
  idleMs: number;
  /** A login ends this long after it began, used or not. */
  maxAgeMs: number;
  /** At most this many logins at once; past it the least recently used ends. */
  maxLogins: number;
}

const defaultLoginOptions: LoginOptions = { idleMs: 2 * 3600_000, maxAgeMs: 12 * 3600_000, maxLogins: 10_000 };

export class Logins {
  readonly #logins = new Map<string, Login>();
  readonly #store: Store;
  readonly #options: LoginOptions;
  readonly #now: () => number;

  constructor(store: Store, options: Partial<LoginOptions> = {}, now: () => number = Date.now) {
    this.#store = store;
    this.#options = { ...defaultLoginOptions, ...options };
    this.#now = now;
  }

  /** A new login for a person's token; undefined if the token is unknown, revoked, or not a person's role. */
  begin(secret: string): { id: string; principal: Principal } | undefined {
    const token = personToken(this.#store, secretHash(secret));
    if (!token) return undefined;
    if (this.#logins.size >= this.#options.maxLogins) {
      // Map order is insertion order and use re-inserts: the first is the least recently used.
      const oldest = this.#logins.keys().next().value;
      if (oldest !== undefined) this.#logins.delete(oldest);
    }
    const id = randomBytes(32).toString('base64url');
    const now = this.#now();
    const login = { tokenHash: secretHash(secret), csrf: randomBytes(24).toString('base64url'), createdAtMs: now, lastUsedMs: now };
    this.#logins.set(id, login);
    return { id, principal: { token, via: 'login', csrf: login.csrf, loginId: id } };
  }

  end(id: string): void {
    this.#logins.delete(id);
  }

  /** Who a request is from: its bearer token first, else its login cookie; undefined if neither holds. */
  principal(headers: IncomingHttpHeaders): Principal | undefined {
    const secret = bearer(headers.authorization);
    if (secret !== undefined) {
      const token = personToken(this.#store, secretHash(secret));
      return token && { token, via: 'bearer' };
    }
    const id = cookie(headers.cookie, SESSION_COOKIE);
    const login = id === undefined ? undefined : this.#logins.get(id);
    if (id === undefined || login === undefined) return undefined;
    const now = this.#now();
    if (now - login.lastUsedMs > this.#options.idleMs || now - login.createdAtMs > this.#options.maxAgeMs) {
      this.#logins.delete(id);
      return undefined;
    }
    const token = personToken(this.#store, login.tokenHash);
    if (!token) {
      this.#logins.delete(id);
      return undefined;
    }
    login.lastUsedMs = now;
    this.#logins.delete(id);
    this.#logins.set(id, login);
    return { token, via: 'login', csrf: login.csrf, loginId: id };
  }
}

/** The CSRF header matches the login's token (compared in constant time). Bearer requests need none. */
export function csrfHolds(principal: Principal, headers: IncomingHttpHeaders): boolean {
  if (principal.via === 'bearer') return true;
  const sent = headers[CSRF_HEADER];
  if (typeof sent !== 'string' || principal.csrf === undefined) return false;
  const a = Buffer.from(sent);
  const b = Buffer.from(principal.csrf);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * A browser's request comes from the collector's own pages: its Origin (sent on every cross-origin
 * request, every POST and every WebSocket upgrade) names the host it was sent to. No Origin is allowed
 * only for clients that are not browsers, and only with a bearer token.
 */
export function sameOrigin(headers: IncomingHttpHeaders): boolean {
  const origin = headers.origin;
  if (origin === undefined) return false;
  try {
    return new URL(origin).host === headers.host;
  } catch {
    return false;
  }
}

export function sessionCookie(id: string, secure: boolean): string {
  return `${SESSION_COOKIE}=${id}; Path=/; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
}

export function clearedSessionCookie(secure: boolean): string {
  return `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0${secure ? '; Secure' : ''}`;
}

function personToken(store: Store, hash: string): (Token & { role: ApiRole }) | undefined {
  const token = store.tokenBySecretHash(hash);
  if (!token || token.revokedAt !== null || !(API_ROLES as readonly string[]).includes(token.role)) return undefined;
  return token as Token & { role: ApiRole };
}

function cookie(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const [key, ...value] = part.trim().split('=');
    if (key === name) return value.join('=') || undefined;
  }
  return undefined;
}
