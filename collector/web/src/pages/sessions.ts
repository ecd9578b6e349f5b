// Recorded sessions: the list (live ones on top), and one session — its live output and, for
// analysts, ending it; its recording replayed; its events and alerts.
import { currentUser, get, getText, post, API } from '../api.ts';
import { fill, formatAgo, formatTime, h, route } from '../dom.ts';
import type { LiveState } from '../terminal.ts';
import { eventView, type SessionDetail, type SessionItem } from '../types.ts';
import { confirmButton, errorBox, every, facts, levelBadge, stateBadge, table, type Page } from '../ui.ts';
import { eventsTable } from './events.ts';

const REFRESH_MS = 5_000;

function sessionState(session: SessionItem): HTMLElement {
  return session.live ? h('span', { class: 'badge live' }, 'live') : stateBadge(session.state);
}

export function sessionsPage(): Page {
  const filters = { state: '', host: '' };
  const results = h('div', { class: 'results', attrs: { 'data-testid': 'sessions' } }, h('p', { class: 'muted' }, 'Loading…'));
  const stateSelect = h('select', { class: 'filter', attrs: { name: 'state', 'aria-label': 'state' } },
    h('option', { attrs: { value: '' } }, 'any state'), ['open', 'ended', 'refused'].map((s) => h('option', { attrs: { value: s } }, s)));
  const host = h('input', { class: 'filter', attrs: { name: 'host', type: 'search', placeholder: 'host', 'aria-label': 'host' } });
  let sessions: SessionItem[] = [];
  const show = () => {
    const hostText = filters.host.trim().toLowerCase();
    const visible = sessions.filter((s) => !hostText || s.host.toLowerCase().includes(hostText));
    fill(results, table<SessionItem>([
      { label: 'state', cell: sessionState },
      { label: 'session', class: 'mono', cell: (s) => h('a', { attrs: { href: route('sessions', s.id) } }, s.id) },
      { label: 'host', class: 'clip', cell: (s) => h('span', { title: s.host }, s.host) },
      { label: 'user', class: 'clip', cell: (s) => h('span', { title: s.user ?? '' }, s.user ?? '—') },
      { label: 'ticket', class: 'clip', cell: (s) => h('span', { title: s.ticket ?? '' }, s.ticket ?? '') },
      { label: 'start', class: 'nowrap', cell: (s) => formatTime(s.start) },
      { label: 'end', class: 'nowrap', cell: (s) => (s.end ? formatTime(s.end) : '') },
      { label: 'ended by', class: 'clip', cell: (s) => h('span', { title: s.endedBy ?? '' }, s.endedBy ?? '') },
    ], visible, { rowClass: (s) => (s.live ? 'live' : ''), empty: 'No recorded sessions match.', testId: 'sessions-table' }));
  };
  const load = async () => {
    try {
      const page = await get<{ sessions: SessionItem[] }>('/sessions', { state: filters.state });
      // Live first, then newest.
      sessions = page.sessions.slice().sort((a, b) => Number(b.live) - Number(a.live) || b.start.localeCompare(a.start));
      show();
    } catch (error) {
      fill(results, errorBox(error));
    }
  };
  stateSelect.addEventListener('change', () => {
    filters.state = stateSelect.value;
    void load();
  });
  host.addEventListener('input', () => {
    filters.host = host.value;
    show();
  });
  // Analysts see sessions come and go; an auditor's every read is logged, so theirs refreshes on asking.
  const analyst = currentUser()?.role === 'analyst';
  const stop = analyst ? every(REFRESH_MS, load) : (void load(), () => {});
  const refresh = analyst ? null : h('button', { attrs: { type: 'button' }, on: { click: () => void load() } }, 'Refresh');
  return {
    element: h('section', { class: 'page scroll-page' }, h('h1', null, 'Sessions'), h('div', { class: 'toolbar' }, stateSelect, host, refresh), results),
    destroy: stop,
  };
}

export function sessionPage(params: string[]): Page {
  const id = params[0] ?? '';
  const me = currentUser();
  const isAnalyst = me?.role === 'analyst';
  const head = h('div', { class: 'session-head' }, h('h1', null, 'Session ', h('span', { class: 'mono' }, id)));
  const live = h('div', { class: 'live-view' });
  const replay = h('div', { class: 'replay-view' });
  const rest = h('div');
  const element = h('section', { class: 'page scroll-page session-page' }, h('a', { class: 'back', attrs: { href: route('sessions') } }, '← Sessions'), head, live, replay, rest);
  let watcher: { close(): void } | undefined;
  let player: { dispose(): void } | undefined;
  let gone = false;

  const showReplay = async () => {
    player?.dispose();
    player = undefined;
    const holder = h('div', { class: 'player', attrs: { 'data-testid': 'player' } });
    const speed = h('select', { class: 'filter', attrs: { 'aria-label': 'speed' } }, [1, 2, 4, 8, 16].map((n) => h('option', { attrs: { value: n } }, `${n}×`)));
    const status = h('span', { class: 'muted' }, 'Loading the recording…');
    fill(replay, h('h2', null, 'Recording'), h('div', { class: 'toolbar' }, speed,
      h('a', { attrs: { href: `${API}/sessions/${encodeURIComponent(id)}/recording`, download: `${id}.cast` } }, 'Download .cast'), status), holder);
    try {
      // The player (and its terminal emulator) loads when a recording is first shown.
      const [cast, { replayer }] = await Promise.all([getText(`/sessions/${encodeURIComponent(id)}/recording`), import('../terminal.ts')]);
      if (gone) return;
      status.textContent = 'Shown: the last screen. Play to watch it from the start.';
      player = replayer(holder, cast);
      speed.addEventListener('change', () => {
        player?.dispose();
        holder.replaceChildren();
        player = replayer(holder, cast, Number(speed.value));
      });
    } catch (error) {
      status.replaceWith(errorBox(error));
    }
  };

  const showLive = async (detail: SessionDetail) => {
    const { liveTerminal } = await import('../terminal.ts');
    if (gone) return;
    const start = detail.events.map(eventView).find((e) => e.category === 'remote_session' && e.fields['Action'] === 'start');
    const cols = typeof start?.fields['Width'] === 'number' ? start.fields['Width'] : 80;
    const rows = typeof start?.fields['Height'] === 'number' ? start.fields['Height'] : 24;
    const status = h('span', { class: 'live-status connecting', attrs: { 'data-testid': 'live-status' } }, 'connecting');
    const screen = h('div', { class: 'terminal', attrs: { 'data-testid': 'live-terminal' } });
    const end = confirmButton('End session', 'Confirm: end this session now', async () => {
      await post(`/sessions/${encodeURIComponent(id)}/kill`);
      status.textContent = 'end requested';
    }, { danger: true, testId: 'end-session' });
    fill(live, h('h2', null, 'Live'), h('div', { class: 'toolbar' }, status, end), screen);
    watcher = liveTerminal(screen, id, { cols, rows }, (state: LiveState) => {
      status.className = `live-status ${state}`;
      status.textContent = state === 'offline' ? 'agent unreachable: waiting for it' : state;
      element.dataset['live'] = state;
      if (state === 'ended') {
        end.remove();
        head.querySelector('.badge.live')?.replaceWith(stateBadge('ended'));
        // The recording is complete once the end reached the collector; offer it.
        live.append(h('p', null, 'The session ended. ', h('button', { attrs: { type: 'button' }, on: { click: () => void reload() } }, 'Show the recording')));
      }
    });
  };

  const reload = async () => {
    watcher?.close();
    watcher = undefined;
    live.replaceChildren();
    let detail: SessionDetail;
    try {
      detail = await get<SessionDetail>(`/sessions/${encodeURIComponent(id)}`);
    } catch (error) {
      fill(rest, errorBox(error));
      return;
    }
    if (gone) return;
    const { session } = detail;
    fill(head, h('h1', null, 'Session ', h('span', { class: 'mono' }, session.id)), ' ', sessionState(session));
    head.append(facts([
      ['host', session.host], ['user', session.user ?? '—'], ['ticket', session.ticket ?? ''],
      ['start', `${formatTime(session.start)} (${formatAgo(session.start)})`], ['end', session.end ? formatTime(session.end) : ''],
      ['ended by', session.endedBy ?? ''], ['reason', session.reason ?? ''], ['agent', session.agentId ?? ''],
      ['events', detail.eventsTruncated ? 'only the first 5,000 are shown here; export the session for all' : ''],
    ]));
    element.dataset['state'] = session.live ? 'live' : session.state;
    // Analysts watch a live session; its recording is there for anyone once it ends (auditors
    // replay what has arrived so far).
    if (session.live && isAnalyst) void showLive(detail);
    else replay.replaceChildren();
    if (!session.live || !isAnalyst) void showReplay();
    const commands = detail.events.map(eventView).filter((e) => e.category !== 'session_recording');
    fill(rest,
      h('h2', null, `Alerts (${detail.alerts.length})`),
      detail.alerts.length === 0 ? h('p', { class: 'empty' }, 'No alerts.') : h('ul', { class: 'alert-links' }, detail.alerts.map((a) => h('li', null, levelBadge(a.level), ' ',
        isAnalyst ? h('a', { attrs: { href: route('alerts', a.id) } }, a.rule.title) : a.rule.title, ' ', h('span', { class: 'muted' }, `${formatTime(a.time)} · ${a.summary}`)))),
      h('h2', null, `Events (${commands.length})`), eventsTable(commands.map((e) => e.raw), { compact: true }));
  };
  void reload();
  return {
    element,
    destroy: () => {
      gone = true;
      watcher?.close();
      player?.dispose();
    },
  };
}
