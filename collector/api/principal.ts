// Who is asking: a bearer token (API clients, the CLI) or a browser's login session (the dashboard).
// A login keeps only the token's hash, so a token revoked or rotated ends its logins at the next request;
// mutating requests of a login must carry its CSRF token, and browser requests must come from our origin.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { bearer, secretHash } from '../auth.ts';
import type { Store, Token } from '../store/types.ts';
import { API_ROLES, type ApiRole } from './access.ts';

export const SESSION_COOKIE = 'omwatch_session';
/**
 * Over HTTPS the cookie is `__Host-` prefixed: browsers then take it only from this host, secure, for
 * every path, so a sibling subdomain cannot plant one of its own. (Plain HTTP is loopback only.)
 */
export function sessionCookieName(secure: boolean): string {
  return secure ? `__Host-${SESSION_COOKIE}` : SESSION_COOKIE;
}
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
  /** A login unused this long ends (an open live view counts as use). */
  idleMs: number;
  /** A login ends this long after it began, used or not. */
  maxAgeMs: number;
  /** At most this many logins at once; past it the least recently used ends. */
  maxLogins: number;
  /** At most this many logins per token; past it that token's least recently used ends, never another's. */
  maxLoginsPerToken: number;
  /** Whether the collector serves HTTPS (the cookie's name and `Secure`). */
  secure: boolean;
}

const defaultLoginOptions: LoginOptions = { idleMs: 2 * 3600_000, maxAgeMs: 12 * 3600_000, maxLogins: 10_000, maxLoginsPerToken: 32, secure: false };

export class Logins {
  readonly #logins = new Map<string, Login>();
  readonly #store: Store;
  readonly #options: LoginOptions;
  readonly #now: () => number;
  readonly #cookie: string;
  readonly #ended = new Set<(loginId: string) => void>();

  constructor(store: Store, options: Partial<LoginOptions> = {}, now: () => number = Date.now) {
    this.#store = store;
    this.#options = { ...defaultLoginOptions, ...options };
    this.#now = now;
    this.#cookie = sessionCookieName(this.#options.secure);
  }

  /** Told of every login that ends (logout, expiry, eviction, its token revoked), to close what it opened. */
  onEnd(listener: (loginId: string) => void): void {
    this.#ended.add(listener);
  }

  /** A new login for a person's token; undefined if the token is unknown, revoked, or not a person's role. */
  begin(secret: string): { id: string; principal: Principal } | undefined {
    const tokenHash = secretHash(secret);
    const token = personToken(this.#store, tokenHash);
    if (!token) return undefined;
    // Map order is insertion order and use re-inserts: the first found is the least recently used.
    const own = [...this.#logins].filter(([, login]) => login.tokenHash === tokenHash);
    if (own.length >= this.#options.maxLoginsPerToken) this.end(own[0]![0]);
    if (this.#logins.size >= this.#options.maxLogins) {
      const oldest = this.#logins.keys().next().value;
      if (oldest !== undefined) this.end(oldest);
    }
    const id = randomBytes(32).toString('base64url');
    const now = this.#now();
    const login = { tokenHash, csrf: randomBytes(24).toString('base64url'), createdAtMs: now, lastUsedMs: now };
    this.#logins.set(id, login);
    return { id, principal: { token, via: 'login', csrf: login.csrf, loginId: id } };
  }

  end(id: string): void {
    if (!this.#logins.delete(id)) return;
    for (const listener of this.#ended) listener(id);
  }

  /** Who a request is from: its bearer token first, else its login cookie; undefined if neither holds. */
  principal(headers: IncomingHttpHeaders): Principal | undefined {
    const secret = bearer(headers.authorization);
    if (secret !== undefined) {
      const token = personToken(this.#store, secretHash(secret));
      return token && { token, via: 'bearer' };
    }
    const id = cookie(headers.cookie, this.#cookie);
    if (id === undefined) return undefined;
    const login = this.#use(id);
    if (!login) return undefined;
    return { token: login.token, via: 'login', csrf: login.csrf, loginId: id };
  }

  /** Marks a login used (an open live view); false once it has ended. */
  touch(id: string): boolean {
    return this.#use(id) !== undefined;
  }

  #use(id: string): (Login & { token: Token & { role: ApiRole } }) | undefined {
    const login = this.#logins.get(id);
    if (login === undefined) return undefined;
    const now = this.#now();
    const token = personToken(this.#store, login.tokenHash);
    if (!token || now - login.lastUsedMs > this.#options.idleMs || now - login.createdAtMs > this.#options.maxAgeMs) {
      this.end(id);
      return undefined;
    }
    login.lastUsedMs = now;
    this.#logins.delete(id);
    this.#logins.set(id, login);
    return { ...login, token };
  }

  cookie(id: string): string {
    return `${this.#cookie}=${id}; Path=/; HttpOnly; SameSite=Strict${this.#options.secure ? '; Secure' : ''}`;
  }

  clearedCookie(): string {
    return `${this.#cookie}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0${this.#options.secure ? '; Secure' : ''}`;
  }
}

/**
 * A browser sends a login's cookie along with requests other sites' pages make (`<img src>`, links),
 * same-site ones even under SameSite=Strict: a login's request is served only when the browser says it
 * came from our own pages (Sec-Fetch-Site) or from the user (`none`: typed, bookmarked).
 */
export function fromOurPages(principal: Principal, headers: IncomingHttpHeaders): boolean {
  if (principal.via === 'bearer') return true;
  const site = headers['sec-fetch-site'];
  return site === undefined || site === 'same-origin' || site === 'none';
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
  // Fetch metadata, where the browser sends it, says the same more directly: only our own pages.
  const site = headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin') return false;
  const origin = headers.origin;
  if (origin === undefined) return false;
  try {
    return new URL(origin).host === headers.host;
  } catch {
    return false;
  }
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
