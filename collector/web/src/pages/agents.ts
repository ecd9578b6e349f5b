// Agents: which are connected, when each was last heard from, what it runs (agent and rules
// versions) and how much it still holds undelivered (outbox depth). Refreshed every few seconds.
import { currentUser, get, post } from '../api.ts';
import { fill, formatAgo, formatCount, formatTime, h } from '../dom.ts';
import type { AgentItem } from '../types.ts';
import { confirmButton, errorBox, every, table, type Column, type Page } from '../ui.ts';

const REFRESH_MS = 5_000;

export function agentsPage(): Page {
  const results = h('div', { class: 'results' }, h('p', { class: 'muted' }, 'Loading…'));
  const summary = h('p', { class: 'muted', attrs: { 'data-testid': 'agents-summary' } });
  // Admins may revoke an agent's key: its connections close and it cannot reconnect.
  const admin = currentUser()?.role === 'admin';
  const revokeColumn: Column<AgentItem> = {
    label: '', cell: (a) => (a.revokedAt ? '' : confirmButton('Revoke', 'Confirm: revoke its key', async () => {
      await post(`/agents/${encodeURIComponent(a.id)}/revoke`);
      await load();
    }, { danger: true })),
  };
  const load = async () => {
    try {
      const { agents } = await get<{ agents: AgentItem[] }>('/agents');
      const sorted = agents.slice().sort((a, b) => Number(b.online) - Number(a.online) || a.name.localeCompare(b.name));
      const online = agents.filter((a) => a.online).length;
      summary.textContent = `${online} of ${agents.length} online · updated ${formatTime(new Date().toISOString())}`;
      fill(results, table<AgentItem>([
        { label: '', cell: (a) => h('span', { class: `dot ${a.revokedAt ? 'revoked' : a.online ? 'online' : 'offline'}`, title: a.revokedAt ? 'revoked' : a.online ? 'online' : 'offline' }) },
        { label: 'name', cell: (a) => a.name },
        { label: 'status', cell: (a) => (a.revokedAt ? `revoked ${formatTime(a.revokedAt)}` : a.online ? 'online' : 'offline') },
        { label: 'last seen', class: 'nowrap', cell: (a) => h('span', { title: formatTime(a.lastSeenAt) }, a.online ? 'now' : formatAgo(a.lastSeenAt)) },
        { label: 'version', cell: (a) => a.version ?? '—' },
        { label: 'rules', cell: (a) => a.rulesVersion ?? '—' },
        { label: 'outbox', class: 'num', cell: (a) => (a.outboxDepth === null ? '—' : h('span', { class: a.outboxDepth > 10_000 ? 'warn' : '' }, formatCount(a.outboxDepth))) },
        { label: 'host id', class: 'mono dim', cell: (a) => a.hostId ?? '' },
        { label: 'agent id', class: 'mono dim', cell: (a) => a.id },
        { label: 'enrolled', class: 'nowrap', cell: (a) => formatTime(a.enrolledAt) },
        ...(admin ? [revokeColumn] : []),
      ], sorted, { rowClass: (a) => (a.revokedAt ? 'revoked' : a.online ? 'online' : 'offline'), empty: 'No agents enrolled.', testId: 'agents-table' }));
    } catch (error) {
      fill(results, errorBox(error));
    }
  };
  const stop = every(REFRESH_MS, load);
  return { element: h('section', { class: 'page scroll-page' }, h('h1', null, 'Agents'), summary, results), destroy: stop };
}
