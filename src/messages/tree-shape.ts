/** Room for a message's position in a shape, below its id, in one sort key (SHAPE_MAX fits). */
const SLOT = 65_536;
/** Ids below this fit with a slot in a double's 53 bits, so sort keys stay exact. */
const MAX_PACKED_ID = 2 ** 53 / SLOT;

/**
 * A session's tree as two parallel arrays, in the order of idx_chat_messages_session_parent (by
 * parent, then timestamp and id), 0 standing for "no parent". Lookups by id binary-search a sorted
 * copy of the ids built on first use, and a parent's newest child is the last of its group: no
 * Map of 10,000 entries per request (building two took ~6 ms of CPU per 10,000-message branch
 * listing on PostgreSQL, more than the statement that reads the shape).
 */
export class TreeShape {
  private byId?: Float64Array;
  private positions?: Map<number, number>;
  private children?: [number, number];

  private constructor(
    private readonly ids: Float64Array,
    private readonly parents: Float64Array,
  ) {}

  /** From rows in index order (SQLite's driver answers rows). */
  static fromRows(rows: { id: number; parent_id: number | null }[]): TreeShape {
    const ids = new Float64Array(rows.length);
    const parents = new Float64Array(rows.length);
    rows.forEach((row, i) => {
      ids[i] = row.id;
      parents[i] = row.parent_id ?? 0;
    });
    return new TreeShape(ids, parents);
  }

  /** From `id,parent;id,parent;…` in index order (what PostgreSQL sends as one text). */
  static fromPairs(text: string | null): TreeShape {
    let count = text ? 1 : 0;
    for (let at = text?.indexOf(';') ?? -1; at >= 0; at = text!.indexOf(';', at + 1)) count++;
    const ids = new Float64Array(count);
    const parents = new Float64Array(count);
    let value = 0;
    let at = 0;
    for (let i = 0; text && i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 44 /* , */) {
        ids[at] = value;
        value = 0;
      } else if (c === 59 /* ; */) {
        parents[at++] = value;
        value = 0;
      } else value = value * 10 + (c - 48);
    }
    if (count > 0) parents[at] = value;
    return new TreeShape(ids, parents);
  }

  get size(): number {
    return this.ids.length;
  }

  has(id: number): boolean {
    return this.indexOf(id) >= 0;
  }

  /** The parent of `id` (null for a root); undefined when `id` is not in the tree. */
  parentOf(id: number): number | null | undefined {
    const at = this.indexOf(id);
    if (at < 0) return undefined;
    return this.parents[at] === 0 ? null : this.parents[at];
  }

  /** The newest child of `id` (the last of its group in index order); undefined for a leaf. */
  newestChildOf(id: number): number | undefined {
    const [start, end] = this.group(id);
    return end > start ? this.ids[end - 1] : undefined;
  }

  /** The children of `parent` (null: the roots), oldest first by (timestamp, id). */
  childrenOf(parent: number | null): number[] {
    const [start, end] = this.group(parent);
    return Array.from(this.ids.subarray(start, end));
  }

  /** Where the children of `parent` are in the arrays: [start, end), empty for a leaf. */
  private group(parent: number | null): [number, number] {
    this.children ??= this.childRange();
    const [first, end] = this.children;
    // The roots' 0s come first (SQLite) or last (PostgreSQL); the parents ascend in between.
    if (parent === null) return first > 0 ? [0, first] : [end, this.parents.length];
    const bound = (above: boolean) => {
      let lo = first;
      let hi = end;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (this.parents[mid] < parent || (above && this.parents[mid] === parent)) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    };
    return [bound(false), bound(true)];
  }

  /** Where the rows with a parent are: [first, end). */
  private childRange(): [number, number] {
    let first = 0;
    let end = this.parents.length;
    while (first < end && this.parents[first] === 0) first++;
    while (end > first && this.parents[end - 1] === 0) end--;
    return [first, end];
  }

  private indexOf(id: number): number {
    const keys = this.sortedKeys();
    if (keys === null) {
      this.positions ??= new Map(Array.from(this.ids, (known, at) => [known, at]));
      return this.positions.get(id) ?? -1;
    }
    const target = id * SLOT;
    let lo = 0;
    let hi = keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (keys[mid] < target) lo = mid + 1;
      else hi = mid;
    }
    return lo < keys.length && Math.floor(keys[lo] / SLOT) === id ? keys[lo] % SLOT : -1;
  }

  /** Each id with its position (id × SLOT + position), ascending; null where they cannot pack. */
  private sortedKeys(): Float64Array | null {
    if (this.byId) return this.byId;
    if (this.ids.length > SLOT || this.ids.some((id) => id >= MAX_PACKED_ID)) return null;
    this.byId = this.ids.map((id, at) => id * SLOT + at).sort();
    return this.byId;
  }
}
