// A virtual list of fixed-height rows: the items stay in a plain array, a spacer gives the scroller its full
// height, and only the rows in view (plus an overscan) exist in the DOM. A million rows scroll like a hundred.
//
// Browsers cap an element's height (Firefox near 17.9 million px, Chrome near 33.5 million): past MAX_PX the
// spacer stays at MAX_PX and scroll positions map proportionally onto row positions.

const MAX_PX = 8_000_000;

export class VirtualList {
  // scroller: an element with a fixed height and overflow: auto; renderRow(item, index) returns an element.
  constructor(scroller, { rowHeight, renderRow, overscan = 20, onScroll = null }) {
    this.scroller = scroller;
    this.rowHeight = rowHeight;
    this.renderRow = renderRow;
    this.overscan = overscan;
    this.onScroll = onScroll;
    this.items = [];
    this.spacer = document.createElement("div");
    this.spacer.className = "vlist-spacer";
    this.rows = document.createElement("div");
    this.rows.className = "vlist-rows";
    this.spacer.appendChild(this.rows);
    scroller.replaceChildren(this.spacer);
    this._frame = 0;
    this._first = -1;
    this._last = -1;
    this._ignoreScroll = false;
    this._pin = null;
    scroller.addEventListener("scroll", () => {
      this.schedule();
      if (this.onScroll && !this._ignoreScroll) this.onScroll();
      this._ignoreScroll = false;
    }, { passive: true });
    if (window.ResizeObserver) new ResizeObserver(() => this.schedule()).observe(scroller);
  }

  get length() {
    return this.items.length;
  }

  _totalPx() {
    return this.items.length * this.rowHeight;
  }

  _spacerPx() {
    return Math.min(this._totalPx(), MAX_PX);
  }

  // The scale between the scroller's range and the rows' range (1 below MAX_PX).
  _scale() {
    const view = this.scroller.clientHeight;
    const spacer = this._spacerPx();
    if (spacer <= view) return 1;
    return (this._totalPx() - view) / (spacer - view);
  }

  // The pixel offset into the whole list at the top of the view. A scaled position cannot land on every row
  // (scrollTop is whole pixels): a position set by code is pinned until the user scrolls away from it.
  _logicalTop() {
    const top = this.scroller.scrollTop;
    if (this._pin && Math.abs(top - this._pin.scrollTop) < 1) return this._pin.logical;
    this._pin = null;
    return top * this._scale();
  }

  _scrollToLogical(logical) {
    this._ignoreScroll = true;
    this._sizeSpacer();
    const max = Math.max(0, this._totalPx() - this.scroller.clientHeight);
    logical = Math.max(0, Math.min(logical, max));
    this.scroller.scrollTop = logical / this._scale();
    this._pin = { scrollTop: this.scroller.scrollTop, logical };
  }

  // The index of the first row in view (partly hidden rows count).
  firstVisible() {
    return Math.min(this.items.length - 1, Math.floor(this._logicalTop() / this.rowHeight));
  }

  visibleCount() {
    return Math.ceil(this.scroller.clientHeight / this.rowHeight);
  }

  atBottom() {
    const s = this.scroller;
    return s.scrollTop + s.clientHeight >= s.scrollHeight - this.rowHeight;
  }

  atTop() {
    return this.scroller.scrollTop <= this.rowHeight;
  }

  // Scroll so that row index sits at the top of the view (align "center" puts it in the middle).
  scrollToIndex(index, align = "top") {
    let logical = index * this.rowHeight;
    if (align === "center") logical -= (this.scroller.clientHeight - this.rowHeight) / 2;
    this._scrollToLogical(logical);
    this.render();
  }

  scrollToBottom() {
    this._ignoreScroll = true;
    this._sizeSpacer();
    this._pin = null;
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.render();
  }

  // Replace every item.
  setItems(items) {
    this.items = items;
    this.invalidate();
  }

  append(items) {
    for (const item of items) this.items.push(item);
    this.invalidate();
  }

  // Add items above, keeping the rows in view where they are.
  prepend(items) {
    if (items.length === 0) return;
    const first = Math.max(0, this.firstVisible());
    const within = this._logicalTop() - first * this.rowHeight;
    this.items = items.concat(this.items);
    this._scrollToLogical((first + items.length) * this.rowHeight + within);
    this.invalidate();
  }

  // Drop n items from the top (memory cap), keeping the rows in view where they are.
  dropFront(n) {
    if (n <= 0) return;
    const first = Math.max(0, this.firstVisible());
    const within = this._logicalTop() - first * this.rowHeight;
    this.items.splice(0, n);
    this._scrollToLogical(Math.max(0, first - n) * this.rowHeight + within);
    this.invalidate();
  }

  dropBack(n) {
    if (n <= 0) return;
    this.items.splice(this.items.length - n, n);
    this.invalidate();
  }

  // Re-render every row in view (after a change of the items or of how rows look).
  invalidate() {
    this._first = -1;
    this.schedule();
  }

  schedule() {
    if (this._frame) return;
    this._frame = requestAnimationFrame(() => {
      this._frame = 0;
      this.render();
    });
  }

  _sizeSpacer() {
    this.spacer.style.height = `${this._spacerPx()}px`;
  }

  render() {
    if (this._frame) {
      cancelAnimationFrame(this._frame);
      this._frame = 0;
    }
    this._sizeSpacer();
    const n = this.items.length;
    if (n === 0) {
      this.rows.replaceChildren();
      this._first = this._last = -1;
      return;
    }
    const logical = this._logicalTop();
    const top = Math.floor(logical / this.rowHeight);
    const within = logical - top * this.rowHeight;
    const first = Math.max(0, top - this.overscan);
    const last = Math.min(n, top + this.visibleCount() + this.overscan);
    // The rows block is placed in scroller pixels: row `top` at the view's top, minus what is scrolled past.
    const offset = this.scroller.scrollTop - within - (top - first) * this.rowHeight;
    this.rows.style.transform = `translateY(${offset}px)`;
    if (first === this._first && last === this._last) return;
    this._first = first;
    this._last = last;
    const fragment = document.createDocumentFragment();
    for (let i = first; i < last; i++) {
      const row = this.renderRow(this.items[i], i);
      row.style.height = `${this.rowHeight}px`;
      fragment.appendChild(row);
    }
    this.rows.replaceChildren(fragment);
  }
}
