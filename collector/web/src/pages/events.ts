// Events, as tables: what an alert fired on, what a session did, and the events page (filters and
// paging by cursor). A recording chunk's data is terminal output: it is never shown here as text.
import { CATEGORY_NAMES } from '../../../protocol/category-names.ts';
import { get } from '../api.ts';
import { formatTime, h, lines, route } from '../dom.ts';
import { eventView, type EventView } from '../types.ts';
import { errorBox, type Page } from '../ui.ts';

const str = (value: unknown) => (typeof value === 'string' ? value : value === undefined || value === null ? '' : JSON.stringify(value));

/** The one line that says what an event is, by category. */
export function eventGist(event: EventView): string {
  const f = event.fields;
  switch (event.category) {
    case 'process_creation': return str(f['CommandLine']) || str(f['Image']);
    case 'process_termination': return `exit ${str(f['Image'])}${f['ExitCode'] !== undefined ? ` (${str(f['ExitCode'])})` : ''}`;
    case 'shell_command': return str(f['CommandLine']);
    case 'remote_session': return [str(f['Action']), str(f['Protocol']), str(f['Tool']), f['SourceIp'] ? `from ${str(f['SourceIp'])}` : '', f['EndedBy'] ? `ended by ${str(f['EndedBy'])}` : '', str(f['Reason'])].filter(Boolean).join(' · ');
    case 'network_connection': return `${str(f['SourceIp'])}:${str(f['SourcePort'])} → ${str(f['DestinationIp'])}:${str(f['DestinationPort'])} ${str(f['Image'])}`;
    case 'session_recording': return `recording chunk ${str(f['Chunk'])} (${typeof f['Data'] === 'string' ? f['Data'].length : 0} chars; replay it in the session)`;
    case 'removable_media': return [str(f['Action']), str(f['Vendor']), str(f['Model']), str(f['Device']), str(f['MountPoint'])].filter(Boolean).join(' ');
    default: return str(f['Action']) || JSON.stringify(f).slice(0, 300);
  }
}

/** The event as JSON for the analyst to read, a recording's data left out (it goes to the player). */
function rawJson(event: EventView): string {
  const raw = event.category === 'session_recording' && typeof event.raw === 'object' && event.raw !== null
    ? { ...(event.raw as Record<string, unknown>), fields: { ...event.fields, Data: '(terminal output: replay the session)' } }
    : event.raw;
  return JSON.stringify(raw, null, 2);
}

export function eventsTable(events: readonly unknown[], options: { compact?: boolean } = {}): HTMLElement {
  if (events.length === 0) return h('p', { class: 'empty' }, 'No events.');
  const views = events.map(eventView);
  return h('table', { class: 'grid events', attrs: { 'data-testid': 'events' } },
    h('thead', null, h('tr', null, h('th', null, 'time'), h('th', null, 'category'), options.compact ? null : h('th', null, 'host'), h('th', null, 'user'), h('th', null, 'what'), options.compact ? null : h('th', null, 'session'))),
    h('tbody', null, views.map((event) => h('tr', null,
      h('td', { class: 'nowrap' }, formatTime(event.time)),
      h('td', { class: 'nowrap' }, event.category),
      options.compact ? null : h('td', { class: 'clip', title: event.host }, event.host),
      h('td', { class: 'clip', title: str(event.fields['User']) }, str(event.fields['User'])),
      h('td', { class: 'what' }, h('details', null, h('summary', null, eventGist(event)), h('pre', { class: 'long json' }, lines(rawJson(event))))),
      options.compact ? null : h('td', null, typeof event.fields['SessionId'] === 'string' ? h('a', { attrs: { href: route('sessions', event.fields['SessionId']) } }, event.fields['SessionId']) : '')))));
}

export function eventsPage(): Page {
  const form = h('form', { class: 'toolbar', attrs: { 'aria-label': 'event filters' } },
    h('input', { class: 'filter', attrs: { name: 'since', type: 'datetime-local', 'aria-label': 'since', step: 1 } }),
    h('input', { class: 'filter', attrs: { name: 'until', type: 'datetime-local', 'aria-label': 'until', step: 1 } }),
    h('input', { class: 'filter', attrs: { name: 'host', placeholder: 'host id', 'aria-label': 'host' } }),
    h('select', { class: 'filter', attrs: { name: 'category', 'aria-label': 'category' } }, h('option', { attrs: { value: '' } }, 'any category'),
      CATEGORY_NAMES.map((c) => h('option', { attrs: { value: c } }, c))),
    h('input', { class: 'filter', attrs: { name: 'session', placeholder: 'session id', 'aria-label': 'session' } }),
    h('button', { attrs: { type: 'submit' } }, 'Show'));
  const results = h('div', { class: 'results' });
  const more = h('button', { attrs: { type: 'button', hidden: true } }, 'Load more');
  let next: string | null = null;
  let shown: unknown[] = [];
  const query = () => {
    const data = new FormData(form);
    const iso = (value: FormDataEntryValue | null) => (typeof value === 'string' && value ? new Date(value).toISOString() : undefined);
    return { since: iso(data.get('since')), until: iso(data.get('until')), host: String(data.get('host') ?? ''), category: String(data.get('category') ?? ''), session: String(data.get('session') ?? ''), limit: 200 };
  };
  const load = async (reset: boolean) => {
    try {
      const page = await get<{ events: unknown[]; next: string | null }>('/events', { ...query(), cursor: reset ? undefined : next });
      shown = reset ? page.events : [...shown, ...page.events];
      next = page.next;
      results.replaceChildren(h('p', { class: 'muted' }, `${shown.length} events${next ? ' (more below)' : ''}`), eventsTable(shown));
      more.hidden = !next;
    } catch (error) {
      results.replaceChildren(errorBox(error));
    }
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void load(true);
  });
  more.addEventListener('click', () => void load(false));
  void load(true);
  return { element: h('section', { class: 'page scroll-page' }, h('h1', null, 'Events'), form, results, more) };
}
