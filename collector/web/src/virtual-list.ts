// A fixed-row-height virtual list: however many items, only the rows in view (and a few either side)
// exist in the DOM, reused as the list scrolls, so 10,000 alerts scroll as smoothly as 10.
export interface VirtualListOptions<T> {
  rowHeight: number;
  /** Rows kept beyond each edge of the view. */
  overscan?: number;
  createRow(): HTMLElement;
  /** Fills a (reused) row for an item; called only when the row shows another item or on refresh. */
  renderRow(row: HTMLElement, item: T, index: number): void;
  /** An item's identity: a row bound to the same key is not re-rendered on scroll. */
  key(item: T): string;
}

interface Slot {
  el: HTMLElement;
  key: string | null;
  index: number;
}

/** Rows in the DOM at most, whatever the screen: a bound on what a very tall window costs. */
const MAX_ROWS = 160;

export class VirtualList<T> {
  readonly viewport: HTMLElement;
  readonly #sizer: HTMLElement;
  readonly #options: Required<VirtualListOptions<T>>;
  #items: readonly T[] = [];
  readonly #rows: Slot[] = [];
  #frame = 0;
  #resize: ResizeObserver;

  constructor(viewport: HTMLElement, options: VirtualListOptions<T>) {
    this.viewport = viewport;
    this.#options = { overscan: 8, ...options };
    this.#sizer = document.createElement('div');
    this.#sizer.className = 'vl-sizer';
    viewport.classList.add('vl-viewport');
    viewport.append(this.#sizer);
    viewport.addEventListener('scroll', () => this.#schedule(), { passive: true });
    this.#resize = new ResizeObserver(() => this.#schedule());
    this.#resize.observe(viewport);
  }

  get items(): readonly T[] {
    return this.#items;
  }

  /** Shows these items (the scroll position stays; see shiftBy). */
  setItems(items: readonly T[]): void {
    this.#items = items;
    this.#sizer.style.height = `${items.length * this.#options.rowHeight}px`;
    this.render(false);
  }

  /** Shifts the view down by `count` rows (items were put above it) so what the user reads stays put. */
  shiftBy(count: number): void {
    if (this.viewport.scrollTop > 0 && count > 0) this.viewport.scrollTop += count * this.#options.rowHeight;
  }

  scrollToIndex(index: number): void {
    const { rowHeight } = this.#options;
    const top = index * rowHeight;
    if (top < this.viewport.scrollTop) this.viewport.scrollTop = top;
    else if (top + rowHeight > this.viewport.scrollTop + this.viewport.clientHeight) this.viewport.scrollTop = top + rowHeight - this.viewport.clientHeight;
  }

  /** Re-renders the rows in view; `force` re-fills rows whose item changed in place (a triage). */
  render(force = true): void {
    cancelAnimationFrame(this.#frame);
    this.#frame = 0;
    const { rowHeight, overscan } = this.#options;
    const height = this.viewport.clientHeight || 600;
    // The list may just have shrunk under a scroll position the browser has not clamped yet.
    const first = Math.min(this.#items.length, Math.max(0, Math.floor(this.viewport.scrollTop / rowHeight) - overscan));
    const last = Math.min(this.#items.length, Math.ceil((this.viewport.scrollTop + height) / rowHeight) + overscan, first + MAX_ROWS);
    const wanted = Math.max(0, last - first);
    while (this.#rows.length < wanted) {
      const el = this.#options.createRow();
      el.classList.add('vl-row');
      el.style.height = `${rowHeight}px`;
      this.viewport.append(el);
      this.#rows.push({ el, key: null, index: -1 });
    }
    while (this.#rows.length > wanted) this.#rows.pop()!.el.remove();
    // A row keeps the item it shows while that item stays in view: scrolling re-binds only the rows
    // that left the view, so each frame touches a handful of rows.
    const byKey = new Map<string, Slot>();
    for (const row of this.#rows) if (row.key !== null) byKey.set(row.key, row);
    const free: Slot[] = [];
    const placed = new Set<Slot>();
    const pending: number[] = [];
    for (let index = first; index < last; index++) {
      const key = this.#options.key(this.#items[index]!);
      const row = byKey.get(key);
      if (row && !placed.has(row)) {
        placed.add(row);
        this.#place(row, index, key, force);
      } else pending.push(index);
    }
    for (const row of this.#rows) if (!placed.has(row)) free.push(row);
    for (const index of pending) this.#place(free.pop()!, index, this.#options.key(this.#items[index]!), true);
  }

  #place(row: Slot, index: number, key: string, fill: boolean): void {
    if (row.index !== index) {
      row.el.style.transform = `translateY(${index * this.#options.rowHeight}px)`;
      row.el.setAttribute('aria-rowindex', String(index + 1));
    }
    if (fill || row.key !== key || row.index !== index) this.#options.renderRow(row.el, this.#items[index]!, index);
    row.key = key;
    row.index = index;
  }

  #schedule(): void {
    if (!this.#frame) this.#frame = requestAnimationFrame(() => this.render(false));
  }

  destroy(): void {
    cancelAnimationFrame(this.#frame);
    this.#resize.disconnect();
  }
}
