// The dashboard's entry: who is logged in decides the navigation (design.md §8 roles); the hash
// route picks the page; a 401 from anywhere brings the login page back.
import { currentUser, loadSession, logout, whenUnauthorized } from './api.ts';
import { h } from './dom.ts';
import { AlertFeed } from './feed.ts';
import { accessLogPage, exportPage, tokensPage } from './pages/admin.ts';
import { agentsPage } from './pages/agents.ts';
import { alertsPage } from './pages/alerts.ts';
import { eventsPage } from './pages/events.ts';
import { loginPage } from './pages/login.ts';
import { sessionPage, sessionsPage } from './pages/sessions.ts';
import type { Me, Role } from './types.ts';
import { errorBox, type Page } from './ui.ts';

interface Route {
  path: string;
  label: string;
  roles: readonly Role[];
  /** Shown in the navigation (a session's own page is reached from the list). */
  nav: boolean;
  page(params: string[]): Page;
}

let feed: AlertFeed | null = null;

const ROUTES: Route[] = [
  { path: 'alerts', label: 'Alerts', roles: ['analyst'], nav: true, page: (params) => alertsPage(feed!, params, true) },
  { path: 'sessions', label: 'Sessions', roles: ['analyst', 'auditor'], nav: true, page: (params) => (params[0] ? sessionPage(params) : sessionsPage()) },
  { path: 'agents', label: 'Agents', roles: ['analyst', 'admin'], nav: true, page: () => agentsPage() },
  { path: 'events', label: 'Events', roles: ['analyst', 'auditor'], nav: true, page: () => eventsPage() },
  { path: 'access-log', label: 'Access log', roles: ['admin', 'auditor'], nav: true, page: () => accessLogPage() },
  { path: 'export', label: 'Export', roles: ['auditor'], nav: true, page: () => exportPage() },
  { path: 'tokens', label: 'Tokens', roles: ['admin'], nav: true, page: () => tokensPage() },
];

const root = document.getElementById('app')!;
let current: { route: Route; key: string; page: Page } | null = null;
let onHash: () => void = () => {};

function parseHash(): { path: string; params: string[] } {
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map((part) => {
    try {
      return decodeURIComponent(part);
    } catch {
      return part;
    }
  });
  return { path: parts[0] ?? '', params: parts.slice(1) };
}

function routesFor(me: Me): Route[] {
  return ROUTES.filter((r) => r.roles.includes(me.role));
}

function showLogin(): void {
  current?.page.destroy?.();
  current = null;
  feed?.close();
  feed = null;
  document.title = 'omwatch — log in';
  root.replaceChildren(loginPage(start));
}

function start(me: Me): void {
  if (me.role === 'analyst') {
    feed = new AlertFeed();
    feed.start();
  }
  const nav = h('nav', { class: 'nav', attrs: { 'aria-label': 'main' } }, routesFor(me).filter((r) => r.nav).map((r) => h('a', { attrs: { href: `#/${r.path}`, 'data-route': r.path } }, r.label)));
  const out = h('button', { class: 'link', attrs: { type: 'button', 'data-testid': 'logout' }, on: { click: () => void logout().finally(showLogin) } }, 'Log out');
  const main = h('main', { class: 'content' });
  root.replaceChildren(h('header', { class: 'topbar' }, h('a', { class: 'brand', attrs: { href: '#/' } }, 'omwatch'), nav,
    h('span', { class: 'who', attrs: { 'data-testid': 'who' } }, me.name, ' ', h('span', { class: 'badge role' }, me.role)), out), main);
  const show = () => {
    const user = currentUser();
    if (!user) return;
    const { path, params } = parseHash();
    const allowed = routesFor(user);
    const target = allowed.find((r) => r.path === path);
    if (!target) {
      // Not a page of this role (or none named): its first page, said so if one was asked for.
      const home = allowed[0]!;
      if (path && ROUTES.some((r) => r.path === path)) {
        main.replaceChildren(errorBox(new Error(`${path} is not available to the ${user.role} role`)));
        current?.page.destroy?.();
        current = null;
        return;
      }
      location.replace(`#/${home.path}`);
      return;
    }
    for (const link of nav.querySelectorAll<HTMLAnchorElement>('a')) link.classList.toggle('active', link.dataset['route'] === target.path);
    const key = `${target.path}/${target.path === 'sessions' ? params.join('/') : ''}`;
    if (current && current.key === key && current.page.update) {
      current.page.update(params);
      return;
    }
    current?.page.destroy?.();
    try {
      current = { route: target, key, page: target.page(params) };
      main.replaceChildren(current.page.element);
    } catch (error) {
      current = null;
      main.replaceChildren(errorBox(error));
    }
    document.title = `omwatch — ${target.label}`;
  };
  window.removeEventListener('hashchange', onHash);
  onHash = show;
  window.addEventListener('hashchange', onHash);
  show();
}

whenUnauthorized(showLogin);
loadSession().then((me) => (me ? start(me) : showLogin()), () => showLogin());
