import { randomUUID } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import { SessionCountsRepository } from '../src/sessions/session-counts.repository';

const SESSION_COLUMNS = `"id", "owner_id", "name", "created_at", "last_updated_at", "llm_model_name", "message_count", "archived", "pinned", "expires_at"`;
const ROWS_PER_INSERT = 500;

const placeholders = (rows: number, columns: number, postgres: boolean) => {
  let n = 0;
  const row = () =>
    `(${Array.from({ length: columns }, () => (postgres ? `$${++n}` : '?')).join(', ')})`;
  return Array.from({ length: rows }, row).join(', ');
};

/**
 * Inserts `count` sessions of `owner` straight into the tables, every one already expired
 * (`expires_at` a minute ago), with `messagesEach` messages each (a chain, the last one current),
 * and rebuilds `session_counts`: what the retention sweep finds after sessions expired unseen.
 * Buckets alternate, so every (archived, pinned) count moves. The ids, in insertion order.
 */
export async function seedExpiredSessions(
  manager: EntityManager,
  options: { count: number; owner: string; messagesEach: number },
): Promise<string[]> {
  const postgres = manager.connection.driver.options.type === 'postgres';
  const now = Date.now();
  const ids = Array.from({ length: options.count }, () => randomUUID());
  for (let i = 0; i < ids.length; i += ROWS_PER_INSERT) {
    const part = ids.slice(i, i + ROWS_PER_INSERT);
    await manager.query(
      `INSERT INTO "sessions" (${SESSION_COLUMNS}) VALUES ${placeholders(part.length, 10, postgres)}`,
      part.flatMap((id, j) => [
        id,
        options.owner,
        `expired ${i + j}`,
        now - 120_000,
        now - 120_000 + options.messagesEach,
        'default',
        options.messagesEach,
        (i + j) % 2 === 1,
        (i + j) % 4 >= 2,
        now - 60_000,
      ]),
    );
    for (let m = 0; m < options.messagesEach; m++) {
      const parent =
        m === 0
          ? 'NULL'
          : `(SELECT MAX(p."id") FROM "chat_messages" p WHERE p."session_id" = s."id")`;
      await manager.query(
        `INSERT INTO "chat_messages" ("session_id", "timestamp", "parent_id", "role", "content")
         SELECT s."id", s."created_at" + ${m + 1}, ${parent}, 'user', 'an expired message'
         FROM "sessions" s WHERE s."id" IN (${placeholders(part.length, 1, postgres)})`,
        part,
      );
    }
  }
  await manager.query(
    `UPDATE "sessions" SET "current_message_id" = (
       SELECT MAX(m."id") FROM "chat_messages" m WHERE m."session_id" = "sessions"."id")
     WHERE "owner_id" = ${postgres ? '$1' : '?'}`,
    [options.owner],
  );
  await SessionCountsRepository.recount(manager);
  return ids;
}
