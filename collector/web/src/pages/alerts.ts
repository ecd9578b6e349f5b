// The live alert feed: every alert of the analyst's feed in a virtual list, coloured by level, with
// filters (level, state, host, rule, text) applied as the analyst types, and the selected alert's
// detail beside the list.
import { formatCount, formatShortTime, formatTime, h, route, setText } from '../dom.ts';
import type { AlertFeed } from '../feed.ts';
import { LEVELS, STATES, type AlertItem, type Level } from '../types.ts';
import type { Page } from '../ui.ts';
import { VirtualList } from '../virtual-list.ts';
import { alertDetail } from './alert-detail.ts';

const ROW_HEIGHT = 28;
/** An alert counts as new this long after it arrived live. */
const FRESH_MS = 8_000;

interface Filter {
  levels: Set<Level>;
  state: string;
  host: string;
  rule: string;
  text: string;
}

function matcher(filter: Filter): (alert: AlertItem) => boolean {
  const host = filter.host.trim().toLowerCase();
  const rule = filter.rule.trim().toLowerCase();
  const text = filter.text.trim().toLowerCase();
  const allLevels = filter.levels.size === LEVELS.length;
  return (alert) => (allLevels || filter.levels.has(alert.level))
    && (filter.state === 'all' || (filter.state === 'unresolved' ? alert.state !== 'closed' : alert.state === filter.state))
    && (!host || (alert.host?.name ?? '').toLowerCase().includes(host) || (alert.host?.id ?? '').toLowerCase().includes(host))
    && (!rule || alert.rule.title.toLowerCase().includes(rule) || alert.rule.id.toLowerCase().includes(rule))
    && (!text || alert.summary.toLowerCase().includes(text) || (alert.sessionId ?? '').toLowerCase().includes(text));
}

export function alertsPage(feed: AlertFeed, params: string[], canTriage: boolean): Page {
  const filter: Filter = { levels: new Set(LEVELS), state: 'all', host: '', rule: '', text: '' };
  let selected: string | null = params[0] ?? null;
  let shown: AlertItem[] = [];
  let unseenAbove = 0;

  const count = h('span', { class: 'count', attrs: { 'data-testid': 'feed-count' } });
  const status = h('span', { class: 'live-status', attrs: { 'data-testid': 'feed-status' } });
  const timing = h('span', { class: 'muted', attrs: { 'data-testid': 'filter-time' } });
  const empty = h('p', { class: 'feed-empty', attrs: { hidden: true } });
  const newPill = h('button', { class: 'new-pill', attrs: { type: 'button', hidden: true }, on: { click: () => { list.viewport.scrollTop = 0; } } });

  const levelChips = LEVELS.map((level) => {
    const chip = h('button', {
      class: `chip lvl-${level} on`, title: 'click: this level alone, then add or remove others; alt-click: this level alone',
      attrs: { type: 'button', 'aria-pressed': 'true', 'data-level': level },
    }, level);
    chip.addEventListener('click', (event) => {
      // Alt-click (or a click on the only one on) shows that level alone.
      if (event.altKey || (filter.levels.size === LEVELS.length && !event.shiftKey)) {
        filter.levels = new Set([level]);
      } else if (filter.levels.has(level)) {
        filter.levels.delete(level);
        if (filter.levels.size === 0) filter.levels = new Set(LEVELS);
      } else filter.levels.add(level);
      for (const other of levelChips) {
        const on = filter.levels.has(other.dataset['level'] as Level);
        other.classList.toggle('on', on);
        other.setAttribute('aria-pressed', String(on));
      }
      apply(true);
    });
    return chip;
  });
  const allLevels = h('button', { class: 'chip', attrs: { type: 'button' }, on: { click: () => {
    filter.levels = new Set(LEVELS);
    for (const chip of levelChips) {
      chip.classList.add('on');
      chip.setAttribute('aria-pressed', 'true');
    }
    apply(true);
  } } }, 'all');
  const input = (name: keyof Omit<Filter, 'levels' | 'state'>, placeholder: string) => h('input', {
    class: 'filter', attrs: { type: 'search', name, placeholder, 'aria-label': placeholder, autocomplete: 'off', spellcheck: 'false' },
    on: { input: (event) => { filter[name] = (event.target as HTMLInputElement).value; apply(true); } },
  });
  const stateSelect = h('select', { class: 'filter', attrs: { name: 'state', 'aria-label': 'state' }, on: { change: (event) => { filter.state = (event.target as HTMLSelectElement).value; apply(true); } } },
    h('option', { attrs: { value: 'all' } }, 'any state'), h('option', { attrs: { value: 'unresolved' } }, 'not closed'),
    STATES.map((s) => h('option', { attrs: { value: s } }, s)));

  const viewport = h('div', { class: 'feed-list', attrs: { role: 'grid', 'aria-label': 'alerts', 'data-testid': 'alert-list', tabindex: '0' } });
  const list = new VirtualList<AlertItem>(viewport, {
    rowHeight: ROW_HEIGHT,
    key: (alert) => alert.id,
    createRow: () => {
      const row = h('div', { class: 'row', attrs: { role: 'row' } },
        h('span', { class: 'c-time', attrs: { role: 'gridcell' } }), h('span', { class: 'c-level', attrs: { role: 'gridcell' } }, h('span', { class: 'badge' })),
        h('span', { class: 'c-host', attrs: { role: 'gridcell' } }), h('span', { class: 'c-rule', attrs: { role: 'gridcell' } }),
        h('span', { class: 'c-summary', attrs: { role: 'gridcell' } }), h('span', { class: 'c-state', attrs: { role: 'gridcell' } }),
        h('span', { class: 'c-assignee', attrs: { role: 'gridcell' } }));
      return row;
    },
    renderRow: (row, alert) => {
      const [time, level, host, rule, summary, state, assignee] = row.children as unknown as HTMLElement[];
      const age = Date.now() - (feed.arrivedAt.get(alert.id) ?? 0);
      const fresh = age < FRESH_MS;
      // A reused row keeps its animation running: the delay sets it to this alert's own age.
      row.style.animationDelay = fresh ? `-${age}ms` : '';
      row.className = `vl-row row lvl-${alert.level} state-${alert.state}${alert.id === selected ? ' selected' : ''}${fresh ? ' fresh' : ''}`;
      row.dataset['id'] = alert.id;
      setText(time!, formatShortTime(alert.time));
      time!.title = formatTime(alert.time);
      const badge = level!.firstElementChild as HTMLElement;
      badge.className = `badge lvl-${alert.level}`;
      setText(badge, alert.level);
      setText(host!, alert.host?.name ?? '—');
      setText(rule!, alert.rule.title);
      setText(summary!, alert.summary);
      setText(state!, alert.state);
      setText(assignee!, alert.assignee ?? '');
    },
  });
  viewport.addEventListener('click', (event) => {
    const row = (event.target as HTMLElement).closest<HTMLElement>('.row');
    if (row?.dataset['id']) location.hash = route('alerts', row.dataset['id']);
  });
  viewport.addEventListener('keydown', (event) => {
    if (event.key !== 'ArrowDown' && event.key !== 'ArrowUp' && event.key !== 'j' && event.key !== 'k') return;
    event.preventDefault();
    const at = shown.findIndex((a) => a.id === selected);
    const next = shown[Math.max(0, Math.min(shown.length - 1, at + (event.key === 'ArrowDown' || event.key === 'j' ? 1 : -1)))];
    if (next) {
      list.scrollToIndex(shown.indexOf(next));
      location.hash = route('alerts', next.id);
    }
  });
  viewport.addEventListener('scroll', () => {
    if (viewport.scrollTop < ROW_HEIGHT && unseenAbove > 0) {
      unseenAbove = 0;
      newPill.hidden = true;
    }
  }, { passive: true });

  const detail = h('aside', { class: 'detail-pane', attrs: { 'aria-label': 'alert detail', 'data-testid': 'alert-detail' } });
  let closeDetail: (() => void) | undefined;
  const element = h('section', { class: 'page alerts-page' },
    h('div', { class: 'feed-pane' },
      h('div', { class: 'toolbar' }, h('div', { class: 'chips', attrs: { role: 'group', 'aria-label': 'levels' } }, levelChips, allLevels), stateSelect,
        input('host', 'host'), input('rule', 'rule'), input('text', 'summary or session')),
      h('div', { class: 'row head', attrs: { role: 'row' } }, ['time', 'level', 'host', 'rule', 'summary', 'state', 'assignee'].map((c) => h('span', { class: `c-${c}`, attrs: { role: 'columnheader' } }, c))),
      h('div', { class: 'feed-body' }, viewport, empty, newPill),
      h('div', { class: 'statusbar' }, count, timing, status)),
    detail);

  const showEmpty = () => {
    empty.hidden = shown.length > 0 || feed.status === 'loading';
    setText(empty, feed.items.length === 0 ? 'No alerts yet. New ones appear here as agents raise them.' : 'No alert matches these filters.');
  };
  const showStatus = () => {
    showEmpty();
    const label = feed.error ? `error: ${feed.error}` : feed.status === 'loading' ? `loading… ${formatCount(feed.loaded)}` : feed.status;
    setText(status, label);
    status.className = `live-status ${feed.error ? 'error' : feed.status}`;
    element.dataset['feed'] = feed.status;
  };

  /** Shows the feed through the filters; a changed filter starts at the top (the newest). */
  function apply(filterChanged = false): void {
    const started = performance.now();
    const matches = matcher(filter);
    shown = feed.items.filter(matches);
    if (filterChanged) {
      viewport.scrollTop = 0;
      unseenAbove = 0;
      newPill.hidden = true;
    }
    list.setItems(shown);
    setText(count, `${formatCount(shown.length)} of ${formatCount(feed.items.length)} alerts`);
    showEmpty();
    const ms = performance.now() - started;
    viewport.dataset['filterMs'] = ms.toFixed(1);
    setText(timing, `filtered in ${ms < 1 ? ms.toFixed(1) : Math.round(ms)} ms`);
  }

  let frame = 0;
  const unsubscribe = feed.subscribe((change) => {
    showStatus();
    if (change.changed.length > 0 && change.added.length === 0) {
      list.render(true);
      return;
    }
    if (change.added.length === 0 || frame) return;
    // Alerts arriving in a burst are shown once a frame.
    const before = new Set(shown.map((a) => a.id));
    frame = requestAnimationFrame(() => {
      frame = 0;
      const topBefore = shown[0]?.id;
      apply();
      // Alerts put above what the analyst reads: keep the view where it was and say how many.
      const above = topBefore ? shown.findIndex((a) => a.id === topBefore) : 0;
      const inserted = shown.slice(0, Math.max(0, above)).filter((a) => !before.has(a.id)).length;
      if (viewport.scrollTop > 0 && inserted > 0) {
        list.shiftBy(inserted);
        unseenAbove += inserted;
        setText(newPill, `↑ ${formatCount(unseenAbove)} new`);
        newPill.hidden = false;
      }
    });
  });

  const select = (id: string | null) => {
    selected = id;
    closeDetail?.();
    closeDetail = undefined;
    element.classList.toggle('with-detail', id !== null);
    detail.replaceChildren();
    list.render(true);
    if (id) closeDetail = alertDetail(detail, id, feed, canTriage);
  };

  showStatus();
  apply();
  select(selected);
  return {
    element,
    update: (next) => {
      if ((next[0] ?? null) !== selected) select(next[0] ?? null);
    },
    destroy: () => {
      unsubscribe();
      cancelAnimationFrame(frame);
      list.destroy();
    },
  };
}
