// One alert in full: what fired and on what (the events, the rule's text), where it leads (its
// session), and its triage — acknowledge, assign, close or reopen with a comment — and history.
import { get, post } from '../api.ts';
import { formatTime, h, lines, route } from '../dom.ts';
import type { AlertFeed } from '../feed.ts';
import type { AlertDetail, AlertItem, AlertState, TriageEntry } from '../types.ts';
import { errorBox, facts, levelBadge, longText, stateBadge } from '../ui.ts';
import { eventsTable } from './events.ts';

/** Fills `pane` with the alert; returns what stops it (the pane is reused for the next alert). */
export function alertDetail(pane: HTMLElement, id: string, feed: AlertFeed, canTriage: boolean): () => void {
  let gone = false;
  const close = h('a', { class: 'close', attrs: { href: route('alerts'), 'aria-label': 'close the detail' } }, '×');
  const body = h('div', { class: 'detail-body' }, h('p', { class: 'muted' }, 'Loading…'));
  pane.replaceChildren(close, body);

  const known = feed.get(id);
  if (known && feed.collectorIds.has(id)) {
    // The collector's own alerts have no rule or events: what the feed carried is all there is.
    body.replaceChildren(header(known), facts([['time', formatTime(known.time)], ['agent', known.agentId]]), h('h3', null, 'Summary'), longText(known.summary));
    return () => {};
  }

  void get<AlertDetail>(`/alerts/${encodeURIComponent(id)}`).then((detail) => {
    if (gone) return;
    render(detail);
  }, (error: unknown) => {
    if (!gone) body.replaceChildren(errorBox(error));
  });

  const render = (detail: AlertDetail) => {
    const { alert } = detail;
    const history = h('ol', { class: 'history', attrs: { 'data-testid': 'triage-history' } });
    const showHistory = (entries: TriageEntry[]) => {
      history.replaceChildren(...(entries.length === 0 ? [h('li', { class: 'muted' }, 'No triage yet.')] : entries.map((entry) => h('li', null,
        h('span', { class: 'time' }, formatTime(entry.at)), ' ', h('strong', null, entry.by), ' ', entry.action, ' → ', stateBadge(entry.state),
        entry.assignee ? [' assigned to ', h('strong', null, entry.assignee)] : null,
        entry.comment ? h('div', { class: 'comment' }, entry.comment) : null))));
    };
    showHistory(detail.history);
    const head = h('div', null, header(alert));
    const triage = canTriage ? triageForm(alert, (state, assignee, entries) => {
      alert.state = state;
      alert.assignee = assignee;
      feed.update(alert.id, { state, assignee });
      head.replaceChildren(header(alert));
      showHistory(entries);
    }) : null;
    body.replaceChildren(...[
      head,
      facts([
        ['time', formatTime(alert.time)],
        ['host', alert.host ? [alert.host.name, h('span', { class: 'muted' }, ` (${alert.host.id})`)] : '—'],
        ['session', alert.sessionId ? h('a', { attrs: { href: route('sessions', alert.sessionId), 'data-testid': 'session-link' } }, alert.sessionId) : null],
        ['rule', [alert.rule.id, alert.rule.author ? h('span', { class: 'muted' }, ` by ${alert.rule.author}`) : null]],
        ['tags', alert.rule.tags.length ? alert.rule.tags.map((tag) => h('span', { class: 'tag' }, tag)) : null],
        ['agent', `${alert.agentId} · stream ${alert.stream} · seq ${alert.seq}`],
      ]),
      h('h3', null, 'Summary'), longText(alert.summary),
      triage,
      h('h3', null, 'History'), history,
      h('h3', null, `Events (${detail.events.length})`), eventsTable(detail.events, { compact: true }),
      h('h3', null, 'Rule'), detail.rule.text ? h('pre', { class: 'long rule-text', attrs: { 'data-testid': 'rule-text' } }, lines(detail.rule.text)) : h('p', { class: 'muted' }, 'The collector does not hold this rule\'s text.'),
      detail.rule.source ? h('p', { class: 'muted' }, `from ${detail.rule.source}`) : null,
    ].filter((part) => part !== null));
  };
  return () => {
    gone = true;
  };
}

function header(alert: AlertItem): HTMLElement {
  return h('header', { class: 'detail-head' }, levelBadge(alert.level), ' ', h('h2', { attrs: { 'data-testid': 'alert-title' } }, alert.rule.title), ' ', stateBadge(alert.state),
    alert.assignee ? h('span', { class: 'muted' }, ` · ${alert.assignee}`) : null);
}

function triageForm(alert: AlertItem, done: (state: AlertState, assignee: string | null, history: TriageEntry[]) => void): HTMLElement {
  const comment = h('textarea', { attrs: { name: 'comment', rows: 2, placeholder: 'comment (needed to close)', maxlength: 4000, 'aria-label': 'comment' } });
  const assignee = h('input', { attrs: { name: 'assignee', placeholder: 'assignee', maxlength: 128, 'aria-label': 'assignee', value: alert.assignee ?? '' } });
  const message = h('div', { class: 'form-message', attrs: { role: 'status' } });
  const act = async (action: 'acknowledge' | 'assign' | 'close' | 'reopen') => {
    message.replaceChildren();
    const body: { action: string; assignee?: string; comment?: string } = { action };
    if (action === 'assign') {
      if (!assignee.value.trim()) {
        message.replaceChildren(errorBox(new Error('name who to assign it to')));
        return;
      }
      body.assignee = assignee.value.trim();
    }
    if (comment.value.trim()) body.comment = comment.value.trim();
    else if (action === 'close') {
      // The collector refuses a close without one: the next analyst must know why it was closed.
      message.replaceChildren(errorBox(new Error('closing needs a comment saying why')));
      comment.focus();
      return;
    }
    for (const button of buttons) button.disabled = true;
    try {
      const result = await post<{ state: AlertState; assignee: string | null; history: TriageEntry[] }>(`/alerts/${encodeURIComponent(alert.id)}/triage`, body);
      comment.value = '';
      done(result.state, result.assignee, result.history);
      form.replaceWith(triageForm(alert, done));
    } catch (error) {
      message.replaceChildren(errorBox(error));
    } finally {
      for (const button of buttons) button.disabled = false;
    }
  };
  const button = (action: 'acknowledge' | 'assign' | 'close' | 'reopen', label: string) => h('button', { attrs: { type: 'button', 'data-action': action }, on: { click: () => void act(action) } }, label);
  const buttons = alert.state === 'closed' ? [button('reopen', 'Reopen')] : [
    ...(alert.state === 'open' ? [button('acknowledge', 'Acknowledge')] : []), button('assign', 'Assign'), button('close', 'Close'),
  ];
  const form = h('div', { class: 'triage', attrs: { 'data-testid': 'triage' } }, h('h3', null, 'Triage'), comment,
    h('div', { class: 'actions' }, alert.state === 'closed' ? null : assignee, buttons), message);
  return form;
}
