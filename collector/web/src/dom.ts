// Building the dashboard's DOM: every string becomes a text node (never markup), with control and
// bidi characters made visible, so what a host, a user or a command line says is shown, never obeyed.

/** C0 and C1 controls, DEL, and the bidi marks and overrides that can make text read other than it is. */
// oxlint-disable-next-line no-control-regex -- matching control characters is the point
const INVISIBLE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/gu;
// oxlint-disable-next-line no-control-regex -- as above
const INVISIBLE_ANY = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/gu;

function escaped(char: string): string {
  const code = char.codePointAt(0)!;
  return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
}

/**
 * The text as it should be read: controls shown as `\x1b`, `\u{202e}` (as `omwatch-collector tail`
 * prints them). Tabs and newlines stay when `multiline` (rule text, JSON); otherwise they show too.
 */
export function printable(value: unknown, multiline = false): string {
  const text = typeof value === 'string' ? value : value === null || value === undefined ? '' : String(value);
  return text.replace(multiline ? INVISIBLE : INVISIBLE_ANY, escaped);
}

export type Child = Node | string | number | null | undefined | false | Child[];

export interface Props {
  class?: string;
  /** Attributes, set with setAttribute; `on…` names are refused (handlers go in `on`). */
  attrs?: Record<string, string | number | boolean | null | undefined>;
  on?: { [K in keyof HTMLElementEventMap]?: (event: HTMLElementEventMap[K]) => void };
  dataset?: Record<string, string>;
  /** Shown on hover: set as an attribute, so as text. */
  title?: string;
}

export function append(parent: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else if (child instanceof Node) parent.appendChild(child);
    else parent.appendChild(document.createTextNode(printable(child)));
  }
}

/** An element with text children only as text nodes. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props?: Props | null, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  if (props?.class) el.className = props.class;
  if (props?.title !== undefined) el.setAttribute('title', printable(props.title, true));
  for (const [name, value] of Object.entries(props?.attrs ?? {})) {
    if (/^on/i.test(name) || name.toLowerCase() === 'srcdoc') throw new Error(`attribute ${name} is not set from data`);
    if (value === null || value === undefined || value === false) continue;
    el.setAttribute(name, value === true ? '' : String(value));
  }
  for (const [key, value] of Object.entries(props?.dataset ?? {})) el.dataset[key] = value;
  for (const [type, handler] of Object.entries(props?.on ?? {})) el.addEventListener(type, handler as EventListener);
  append(el, children);
  return el;
}

/** Text that keeps its line breaks (rule text, JSON), controls still shown escaped. */
export function lines(value: unknown): Text {
  return document.createTextNode(printable(value, true));
}

/** Replaces an element's children. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

/** Sets a node's text (made printable); cheaper than fill for the virtual list's cells. */
export function setText(el: HTMLElement, value: unknown): void {
  const text = printable(value);
  if (el.textContent !== text) el.textContent = text;
}

/** A link within the dashboard: `#/…` built from parts, each encoded, so data cannot make it leave. */
export function route(...parts: string[]): string {
  return `#/${parts.map((part) => encodeURIComponent(part)).join('/')}`;
}

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

/** `2026-11-27 10:00:03` in local time; the raw value when it is not a time. */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return printable(iso);
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/** `10:00:03` today, `11-26 10:00:03` before. */
export function formatShortTime(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return printable(iso);
  const time = `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
  return date.toDateString() === new Date().toDateString() ? time : `${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${time}`;
}

/** `4 s ago`, `3 min ago`, `2 h ago`, `5 d ago`. */
export function formatAgo(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return 'never';
  const ms = now - Date.parse(iso);
  if (Number.isNaN(ms)) return printable(iso);
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86_400)} d ago`;
}

export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}
