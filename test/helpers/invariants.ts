import type { DataSource } from 'typeorm';
import type { DatabaseService } from '../../src/database/database.service';

/**
 * The store's invariants, checked straight in the database: no message without its session, every
 * session's message_count equal to its real count, and last_updated_at equal to its newest message's
 * timestamp (or created_at when it has none; no earlier than it once messages were deleted), and
 * session_counts equal to the sessions; v1.2: every message's parent a message of its session, and
 * every session's current_message_id a message of its session, null exactly when it has none.
 * Returns the violations; an empty list means all hold.
 * `db` is the app's DatabaseService, or `readerOf(dataSource)` for a database a server child owns.
 */
export async function invariantViolations(
  db: Pick<DatabaseService, 'read'>,
  options: { messagesDeleted?: boolean } = {},
): Promise<string[]> {
  // Deleting a message leaves last_updated_at where it was: it may then be later than the newest
  // remaining message, never earlier.
  const newest = `COALESCE((SELECT MAX(m."timestamp") FROM "chat_messages" m WHERE m."session_id" = s."id"), s."created_at")`;
  const orphans: { id: number }[] = await db.read((m) =>
    m.query(
      `SELECT m."id" FROM "chat_messages" m LEFT JOIN "sessions" s ON s."id" = m."session_id"
       WHERE s."id" IS NULL`,
    ),
  );
  const miscounted: { id: string }[] = await db.read((m) =>
    m.query(
      `SELECT s."id" FROM "sessions" s
       WHERE s."message_count" <> (SELECT COUNT(*) FROM "chat_messages" m WHERE m."session_id" = s."id")`,
    ),
  );
  const stale: { id: string }[] = await db.read((m) =>
    m.query(
      `SELECT s."id" FROM "sessions" s WHERE s."last_updated_at" ${options.messagesDeleted ? '<' : '<>'} ${newest}`,
    ),
  );
  const counts: { owner_id: string }[] = await db.read((m) =>
    m.query(
      `SELECT g."owner_id" FROM (
         SELECT "owner_id", "archived", "pinned", COUNT(*) AS "n" FROM "sessions"
         GROUP BY "owner_id", "archived", "pinned") g
       LEFT JOIN "session_counts" c ON c."owner_id" = g."owner_id"
         AND c."archived" = g."archived" AND c."pinned" = g."pinned"
       WHERE c."n" IS NULL OR c."n" <> g."n"
       UNION ALL
       SELECT c."owner_id" FROM "session_counts" c WHERE c."n" <> (
         SELECT COUNT(*) FROM "sessions" s WHERE s."owner_id" = c."owner_id"
           AND s."archived" = c."archived" AND s."pinned" = c."pinned")`,
    ),
  );
  const strayParents: { id: number | string }[] = await db.read((m) =>
    m.query(
      `SELECT c."id" FROM "chat_messages" c WHERE c."parent_id" IS NOT NULL AND NOT EXISTS (
         SELECT 1 FROM "chat_messages" p WHERE p."id" = c."parent_id" AND p."session_id" = c."session_id")`,
    ),
  );
  const strayCurrent: { id: string }[] = await db.read((m) =>
    m.query(
      `SELECT s."id" FROM "sessions" s WHERE CASE
         WHEN s."current_message_id" IS NULL
           THEN EXISTS (SELECT 1 FROM "chat_messages" m WHERE m."session_id" = s."id")
         ELSE NOT EXISTS (SELECT 1 FROM "chat_messages" m
           WHERE m."id" = s."current_message_id" AND m."session_id" = s."id") END`,
    ),
  );
  return [
    ...strayParents.map((c) => `message ${c.id} has a parent outside its session`),
    ...strayCurrent.map((s) => `current_message_id of session ${s.id} is not one of its messages`),
    ...counts.map((c) => `session_counts of owner ${c.owner_id} disagree with the sessions`),
    ...orphans.map((o) => `orphan message ${o.id}`),
    ...miscounted.map((s) => `wrong message_count on session ${s.id}`),
    ...stale.map((s) => `last_updated_at is not the newest message's timestamp on session ${s.id}`),
  ];
}

/** Reads through a DataSource of its own (e.g. on the file or schema a server child is using). */
export function readerOf(dataSource: DataSource): Pick<DatabaseService, 'read'> {
  return { read: (work) => work(dataSource.manager) };
}

/**
 * The shape of every session's tree, read straight from the database (a JavaScript walk over the
 * (id, parent) pairs, so keep it for stores of test size): no parent link leads in a cycle (every
 * message reaches a root), and, where `ordered` (every message written through the API, none
 * imported), each parent is older than its child by (timestamp, id), as appends and forks stamp them.
 * Returns the violations; an empty list means all hold.
 */
export async function treeViolations(
  db: Pick<DatabaseService, 'read'>,
  options: { ordered?: boolean } = {},
): Promise<string[]> {
  const rows: {
    id: number | string;
    parent_id: number | string | null;
    timestamp: number | string;
  }[] = await db.read((m) => m.query(`SELECT "id", "parent_id", "timestamp" FROM "chat_messages"`));
  const messages = new Map(
    rows.map((r) => [
      Number(r.id),
      { parent: r.parent_id === null ? null : Number(r.parent_id), timestamp: Number(r.timestamp) },
    ]),
  );
  const problems: string[] = [];
  const reachesRoot = new Set<number>();
  for (const start of messages.keys()) {
    const walked: number[] = [];
    const onWalk = new Set<number>();
    let id: number | null = start;
    while (id !== null && !reachesRoot.has(id) && !onWalk.has(id)) {
      walked.push(id);
      onWalk.add(id);
      id = messages.get(id)?.parent ?? null;
    }
    if (id !== null && onWalk.has(id)) {
      problems.push(`message ${start} is on a cycle of parent links (through ${id})`);
      break;
    }
    for (const w of walked) reachesRoot.add(w);
  }
  if (options.ordered) {
    for (const [id, m] of messages) {
      const parent = m.parent === null ? undefined : messages.get(m.parent);
      if (
        parent &&
        (parent.timestamp > m.timestamp || (parent.timestamp === m.timestamp && m.parent! > id))
      ) {
        problems.push(`message ${id} is older than its parent ${m.parent}`);
      }
    }
  }
  return problems;
}
