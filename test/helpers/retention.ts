import type { DatabaseService } from '../../src/database/database.service';

export const DAY_MS = 86_400_000;

/** Makes the session expired straight in the database (`expires_at` a second ago), as time would. */
export async function expireSession(db: DatabaseService, id: string): Promise<void> {
  await db.write((m) =>
    m.query(db.sql('UPDATE "sessions" SET "expires_at" = ? WHERE "id" = ?'), [
      Date.now() - 1000,
      id,
    ]),
  );
}

/** Moves the session and its messages `ms` into the past, straight in the database. */
export async function ageSession(db: DatabaseService, id: string, ms: number): Promise<void> {
  await db.write(async (m) => {
    await m.query(
      db.sql(
        `UPDATE "sessions" SET "created_at" = "created_at" - ?, "last_updated_at" = "last_updated_at" - ?
         WHERE "id" = ?`,
      ),
      [ms, ms, id],
    );
    await m.query(
      db.sql('UPDATE "chat_messages" SET "timestamp" = "timestamp" - ? WHERE "session_id" = ?'),
      [ms, id],
    );
  });
}
