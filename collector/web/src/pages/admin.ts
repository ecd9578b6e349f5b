// The admin's and the auditor's pages: the access log (who read or changed what), tokens (issue,
// revoke), and exports of the evidence (downloads straight from the API).
import { currentUser, del, get, post, API } from '../api.ts';
import { fill, formatTime, h } from '../dom.ts';
import type { AccessEntry, TokenItem } from '../types.ts';
import { confirmButton, errorBox, table, type Page } from '../ui.ts';

export function accessLogPage(): Page {
  const results = h('div', { class: 'results' }, h('p', { class: 'muted' }, 'Loading…'));
  const more = h('button', { attrs: { type: 'button', hidden: true } }, 'Load more');
  let entries: AccessEntry[] = [];
  let next: string | null = null;
  const load = async (reset: boolean) => {
    try {
      const page = await get<{ entries: AccessEntry[]; next: string | null }>('/access-log', { cursor: reset ? undefined : next, limit: 200 });
      entries = reset ? page.entries : [...entries, ...page.entries];
      next = page.next;
      more.hidden = !next;
      fill(results, table<AccessEntry>([
        { label: 'time', class: 'nowrap', cell: (e) => formatTime(e.at) },
        { label: 'who', cell: (e) => e.by },
        { label: 'action', class: 'mono', cell: (e) => e.action },
        { label: 'target', class: 'mono', cell: (e) => e.target },
        { label: 'status', class: 'num', cell: (e) => h('span', { class: e.status >= 400 ? 'warn' : '' }, String(e.status)) },
        { label: 'token', class: 'mono dim', cell: (e) => e.tokenId },
      ], entries, { empty: 'Nothing logged yet.', testId: 'access-log' }));
    } catch (error) {
      fill(results, errorBox(error));
    }
  };
  more.addEventListener('click', () => void load(false));
  void load(true);
  return { element: h('section', { class: 'page scroll-page' }, h('h1', null, 'Access log'), results, more) };
}

export function tokensPage(): Page {
  const results = h('div', { class: 'results' }, h('p', { class: 'muted' }, 'Loading…'));
  const issued = h('div', { attrs: { role: 'status' } });
  const name = h('input', { attrs: { name: 'name', placeholder: 'name (who or what holds it)', required: true, maxlength: 64, 'aria-label': 'name' } });
  const role = h('select', { attrs: { name: 'role', 'aria-label': 'role' } }, ['analyst', 'auditor', 'admin', 'enroll'].map((r) => h('option', { attrs: { value: r } }, r)));
  const form = h('form', { class: 'toolbar' }, role, name, h('button', { attrs: { type: 'submit' } }, 'Create token'));
  const load = async () => {
    try {
      const { tokens } = await get<{ tokens: TokenItem[] }>('/tokens');
      fill(results, table<TokenItem>([
        { label: 'name', cell: (t) => t.name },
        { label: 'role', cell: (t) => t.role },
        { label: 'created', class: 'nowrap', cell: (t) => formatTime(t.createdAt) },
        { label: 'last used', class: 'nowrap', cell: (t) => formatTime(t.lastUsedAt) },
        { label: 'state', cell: (t) => (t.revokedAt ? `revoked ${formatTime(t.revokedAt)}` : 'active') },
        { label: 'id', class: 'mono dim', cell: (t) => t.id },
        { label: '', cell: (t) => (t.revokedAt ? '' : confirmButton('Revoke', 'Confirm revoke', async () => {
          await del(`/tokens/${encodeURIComponent(t.id)}`);
          await load();
        }, { danger: true })) },
      ], tokens, { rowClass: (t) => (t.revokedAt ? 'revoked' : ''), testId: 'tokens' }));
    } catch (error) {
      fill(results, errorBox(error));
    }
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void (async () => {
      try {
        const made = await post<{ id: string; secret: string }>('/tokens', { role: role.value, name: name.value.trim() });
        fill(issued, h('div', { class: 'secret' }, h('p', null, `Token for ${name.value.trim()} (${role.value}); shown this once:`), h('code', { attrs: { 'data-testid': 'new-secret' } }, made.secret)));
        name.value = '';
        await load();
      } catch (error) {
        fill(issued, errorBox(error));
      }
    })();
  });
  void load();
  return { element: h('section', { class: 'page scroll-page' }, h('h1', null, 'Tokens'), form, issued, results) };
}

export function exportPage(): Page {
  const field = (name: string, label: string, type = 'text') => h('label', null, label, h('input', { attrs: { name, type, step: type === 'datetime-local' ? 1 : undefined } }));
  const format = h('select', { attrs: { name: 'format' } }, h('option', { attrs: { value: 'jsonl' } }, 'JSON lines'), h('option', { attrs: { value: 'csv' } }, 'CSV (spreadsheets)'));
  const link = h('a', { class: 'button', attrs: { 'data-testid': 'export-link' } }, 'Download');
  const form = h('form', { class: 'stack' }, h('label', null, 'format', format), field('since', 'since', 'datetime-local'), field('until', 'until', 'datetime-local'),
    field('host', 'host id'), field('session', 'session id'), link);
  const update = () => {
    const data = new FormData(form);
    const params = new URLSearchParams();
    for (const [key, value] of data) {
      if (typeof value !== 'string' || !value) continue;
      params.set(key, key === 'since' || key === 'until' ? new Date(value).toISOString() : value);
    }
    link.setAttribute('href', `${API}/export?${params.toString()}`);
    link.setAttribute('download', `omwatch-export.${format.value}`);
  };
  form.addEventListener('input', update);
  form.addEventListener('submit', (event) => event.preventDefault());
  update();
  return {
    element: h('section', { class: 'page scroll-page' }, h('h1', null, 'Export'),
      h('p', { class: 'muted' }, `Every record exactly as chained, with its hash and prev, so the chain can be recomputed from the file. This export is itself logged, as ${currentUser()?.name ?? 'you'}.`), form),
  };
}
