// The dashboard's one door to the collector: same-origin fetches with the session cookie, the CSRF
// header on every change, errors as ApiError, and a 401 anywhere sending the user back to log in.
import type { Me } from './types.ts';

export const API = '/api/v1';
const CSRF_HEADER = 'x-omwatch-csrf';

export class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = 'ApiError';
  }
}

let me: Me | null = null;
let onUnauthorized: () => void = () => {};

export function currentUser(): Me | null {
  return me;
}

/** Called when the collector says the session is gone (401): the app shows the login page. */
export function whenUnauthorized(handler: () => void): void {
  onUnauthorized = handler;
}

async function errorOf(response: Response): Promise<ApiError> {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = (await response.json()) as { error?: unknown };
    if (typeof body.error === 'string') message = body.error;
  } catch {
    // Not JSON: the status says enough.
  }
  return new ApiError(response.status, message);
}

export async function request(method: string, path: string, body?: unknown): Promise<Response> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (method !== 'GET' && me) headers[CSRF_HEADER] = me.csrf;
  // A body-less request says no content type: the server refuses an empty JSON body.
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${API}${path}`, {
    method, headers, credentials: 'same-origin', cache: 'no-store',
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  if (response.ok) return response;
  const error = await errorOf(response);
  if (response.status === 401 && me) {
    me = null;
    onUnauthorized();
  }
  throw error;
}

export async function get<T>(path: string, query?: Record<string, string | number | undefined | null>): Promise<T> {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {})) if (value !== undefined && value !== null && value !== '') params.set(key, String(value));
  const qs = params.toString();
  return (await (await request('GET', qs ? `${path}?${qs}` : path)).json()) as T;
}

export async function post<T>(path: string, body?: unknown): Promise<T> {
  const response = await request('POST', path, body);
  return (response.status === 204 || response.headers.get('content-length') === '0' ? {} : await response.json().catch(() => ({}))) as T;
}

export async function del(path: string): Promise<void> {
  await request('DELETE', path);
}

export async function getText(path: string): Promise<string> {
  return (await request('GET', path)).text();
}

/** Who is logged in, or null (no session, or it expired). */
export async function loadSession(): Promise<Me | null> {
  const response = await fetch(`${API}/session`, { credentials: 'same-origin', cache: 'no-store', headers: { accept: 'application/json' } });
  me = response.ok ? ((await response.json()) as Me) : null;
  return me;
}

export async function login(token: string): Promise<Me> {
  const response = await fetch(`${API}/session`, {
    method: 'POST', credentials: 'same-origin', headers: { 'content-type': 'application/json', accept: 'application/json' }, body: JSON.stringify({ token }),
  });
  if (!response.ok) throw await errorOf(response);
  me = (await response.json()) as Me;
  return me;
}

export async function logout(): Promise<void> {
  try {
    if (me) await request('DELETE', '/session');
  } finally {
    me = null;
  }
}

/** A same-origin WebSocket URL for an API path (the cookie goes with the upgrade). */
export function socketUrl(path: string): string {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}${API}${path}`;
}
