import fc from 'fast-check';
import { TreeShape } from './tree-shape';

interface Node {
  id: number;
  parent_id: number | null;
  timestamp: number;
}

/** Rows in idx_chat_messages_session_parent's order, roots first (SQLite) or last (PostgreSQL). */
function indexOrder(nodes: Node[], rootsFirst: boolean): Node[] {
  const key = (n: Node) =>
    n.parent_id === null ? (rootsFirst ? -Infinity : Infinity) : n.parent_id;
  return [...nodes].sort((a, b) => key(a) - key(b) || a.timestamp - b.timestamp || a.id - b.id);
}

/** What the shape must answer, from plain Maps. */
function expected(nodes: Node[]) {
  const parentOf = new Map(nodes.map((n) => [n.id, n.parent_id]));
  const newest = new Map<number, Node>();
  for (const n of nodes) {
    if (n.parent_id === null) continue;
    const known = newest.get(n.parent_id);
    if (
      !known ||
      n.timestamp > known.timestamp ||
      (n.timestamp === known.timestamp && n.id > known.id)
    )
      newest.set(n.parent_id, n);
  }
  const childrenOf = (parent: number | null) =>
    nodes
      .filter((n) => n.parent_id === parent)
      .sort((a, b) => a.timestamp - b.timestamp || a.id - b.id)
      .map((n) => n.id);
  return { parentOf, newestChildOf: (id: number) => newest.get(id)?.id, childrenOf };
}

/** A random tree: each node's parent is an earlier node or none; ids are spread out and unordered. */
const trees = (idBase: number) =>
  fc
    .array(
      fc.record({
        parent: fc.option(fc.nat(), { nil: null, freq: 5 }),
        gap: fc.integer({ min: 1, max: 1000 }),
        timestamp: fc.integer({ min: 0, max: 20 }),
      }),
      { maxLength: 60 },
    )
    .chain((specs) =>
      fc
        .shuffledSubarray(
          specs.map((_, i) => i),
          { minLength: specs.length, maxLength: specs.length },
        )
        .map((order) => {
          let id = idBase;
          const ids = order.map((i) => (id += specs[i].gap));
          return specs.map((spec, i) => ({
            id: ids[i],
            parent_id: i === 0 || spec.parent === null ? null : ids[spec.parent % i],
            timestamp: spec.timestamp,
          }));
        }),
    );

describe('TreeShape', () => {
  for (const [label, idBase] of [
    ['small ids', 0],
    ['ids too large to pack with a position', 2 ** 40],
  ] as const) {
    it(`answers parents and newest children as plain maps do (${label})`, () => {
      fc.assert(
        fc.property(trees(idBase), fc.boolean(), fc.boolean(), (nodes, rootsFirst, asText) => {
          const rows = indexOrder(nodes, rootsFirst);
          const shape = asText
            ? TreeShape.fromPairs(
                rows.length === 0 ? null : rows.map((r) => `${r.id},${r.parent_id ?? 0}`).join(';'),
              )
            : TreeShape.fromRows(rows);
          const want = expected(nodes);
          expect(shape.size).toBe(nodes.length);
          for (const n of nodes) {
            expect(shape.has(n.id)).toBe(true);
            expect(shape.parentOf(n.id)).toBe(want.parentOf.get(n.id));
            expect(shape.newestChildOf(n.id)).toBe(want.newestChildOf(n.id));
            expect(shape.childrenOf(n.id)).toEqual(want.childrenOf(n.id));
          }
          expect(shape.childrenOf(null)).toEqual(want.childrenOf(null));
          for (const missing of [idBase, idBase + 1_000_000_000, 1]) {
            if (want.parentOf.has(missing)) continue;
            expect(shape.has(missing)).toBe(false);
            expect(shape.parentOf(missing)).toBeUndefined();
            expect(shape.newestChildOf(missing)).toBeUndefined();
            expect(shape.childrenOf(missing)).toEqual([]);
          }
        }),
        { numRuns: 300 },
      );
    });
  }
});
