// Small pieces the pages share: tables of items, badges, key/value lists, status lines and a two-step
// confirm that needs no browser dialog.
import { h, lines, type Child } from './dom.ts';

export interface Page {
  element: HTMLElement;
  /** The same route with other parameters (an alert selected in the feed): no new page. */
  update?(params: string[]): void;
  destroy?(): void;
}

export interface Column<T> {
  label: string;
  class?: string;
  cell(item: T): Child;
}

/** A plain table; for lists that stay small (agents, sessions, tokens). */
export function table<T>(columns: Column<T>[], items: readonly T[], options: { rowClass?: (item: T) => string; empty?: string; testId?: string } = {}): HTMLElement {
  if (items.length === 0) return h('p', { class: 'empty' }, options.empty ?? 'Nothing here.');
  return h('table', { class: 'grid', attrs: { 'data-testid': options.testId } },
    h('thead', null, h('tr', null, columns.map((c) => h('th', { class: c.class ?? '' }, c.label)))),
    h('tbody', null, items.map((item) => h('tr', { class: options.rowClass?.(item) ?? '' }, columns.map((c) => h('td', { class: c.class ?? '' }, c.cell(item)))))));
}

export function levelBadge(level: string): HTMLElement {
  return h('span', { class: `badge lvl-${/^[a-z]+$/.test(level) ? level : 'unknown'}` }, level);
}

export function stateBadge(state: string): HTMLElement {
  return h('span', { class: `badge state-${/^[a-z]+$/.test(state) ? state : 'unknown'}` }, state);
}

/** A definition list of label → value; empty values are left out. */
export function facts(entries: Array<[string, Child]>): HTMLElement {
  return h('dl', { class: 'facts' }, entries.filter(([, value]) => value !== null && value !== undefined && value !== '').map(([label, value]) => [h('dt', null, label), h('dd', null, value)]));
}

/** Attacker-controlled long text (a command line, a summary): wrapped, scrollable, selectable. */
export function longText(value: unknown, multiline = false): HTMLElement {
  return h('pre', { class: 'long' }, multiline ? lines(value) : String(value ?? ''));
}

export function errorBox(error: unknown): HTMLElement {
  return h('p', { class: 'error', attrs: { role: 'alert' } }, error instanceof Error ? error.message : String(error));
}

/** A button that asks once more in place ("End session" → "Confirm: end it" / "Cancel"). */
export function confirmButton(label: string, confirmLabel: string, action: () => Promise<void> | void, options: { danger?: boolean; testId?: string } = {}): HTMLElement {
  const wrap = h('span', { class: 'confirm' });
  const initial = () => {
    wrap.replaceChildren(h('button', { class: options.danger ? 'danger' : '', attrs: { type: 'button', 'data-testid': options.testId }, on: { click: ask } }, label));
  };
  const ask = () => {
    wrap.replaceChildren(
      h('button', { class: options.danger ? 'danger strong' : 'strong', attrs: { type: 'button', 'data-testid': options.testId ? `${options.testId}-confirm` : undefined }, on: { click: run } }, confirmLabel),
      h('button', { attrs: { type: 'button' }, on: { click: initial } }, 'Cancel'),
    );
  };
  const run = async () => {
    wrap.replaceChildren(h('span', { class: 'muted' }, 'Working…'));
    try {
      await action();
      initial();
    } catch (error) {
      initial();
      wrap.append(errorBox(error));
    }
  };
  initial();
  return wrap;
}

/** Runs `tick` now and every `ms` while the page lives; returns the stop function. */
export function every(ms: number, tick: () => Promise<void> | void): () => void {
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const loop = async () => {
    try {
      await tick();
    } catch {
      // The tick shows its own errors; the next one tries again.
    }
    if (!stopped) timer = setTimeout(() => void loop(), ms);
  };
  void loop();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
