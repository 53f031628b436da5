/**
 * What TypeORM's own API costs on the request paths, against the repositories' prepared statements:
 * µs per call, best of 3 runs, each way, on one connection with no HTTP around it.
 *
 *   npx ts-node --transpile-only bench/repository-costs.ts [--database-url=postgres://…]
 *
 * Without a URL: SQLite in memory. The store holds 2,000 sessions of one owner and a session of 200
 * messages; the figures are quoted in the repositories and in docs/benchmarks.md.
 */
import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { validateEnv } from '../src/config/env.validation';
import { buildDataSourceOptions } from '../src/database/database.options';
import { DatabaseService } from '../src/database/database.service';
import { entities } from '../src/database/entities';
import { ChatMessage } from '../src/messages/chat-message.entity';
import { ChatMessagesRepository } from '../src/messages/chat-messages.repository';
import { OwnerRule } from '../src/sessions/owner-rule';
import { SessionCount } from '../src/sessions/session-count.entity';
import { SessionCountsRepository } from '../src/sessions/session-counts.repository';
import { Session } from '../src/sessions/session.entity';
import { SessionsRepository } from '../src/sessions/sessions.repository';

const OWNER = 'bench';
const GETS = 20_000;
const APPENDS = 5_000;
const PAGES = 5_000;

async function timed(label: string, calls: number, fn: (i: number) => Promise<unknown>) {
  let best = Infinity;
  for (let run = 0; run < 3; run++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) await fn(i);
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 1000 / calls);
  }
  console.log(`${label.padEnd(52)} ${best.toFixed(1).padStart(7)} µs`);
}

async function main(): Promise<void> {
  const url = process.argv
    .find((a) => a.startsWith('--database-url='))
    ?.slice('--database-url='.length);
  const source = await new DataSource({
    ...buildDataSourceOptions(validateEnv({ DATABASE_URL: url ?? 'sqlite::memory:' })),
    entities,
    migrationsRun: true,
  }).initialize();
  const db = new DatabaseService(source);
  const rule = new OwnerRule(db.isSqlite, 0);
  const sessions = new SessionsRepository(db, rule);
  const counts = new SessionCountsRepository(db, rule);
  const messages = new ChatMessagesRepository(db, rule);
  const manager = source.manager;
  // It fills the database with its own rows: never one that holds data already.
  if (await manager.exists(Session)) {
    await source.destroy();
    throw new Error('the database holds sessions already: give this script an empty one');
  }

  const ids: string[] = [];
  await source.transaction(async (m) => {
    for (let i = 0; i < 2000; i++) {
      const id = randomUUID();
      ids.push(id);
      const session: Session = {
        id,
        owner_id: OWNER,
        name: `Session ${i}`,
        created_at: 1_700_000_000_000 + i,
        last_updated_at: 1_700_000_000_000 + i,
        llm_model_name: 'model',
        rag_document_ids: ['doc-1'],
        metadata_tags: { topic: 'bench' },
        message_count: 0,
        archived: false,
        pinned: false,
        current_message_id: null,
        forked_from: null,
        expires_at: null,
      };
      await sessions.insert(m, session);
    }
    await counts.add(m, OWNER, { archived: false, pinned: false }, 2000);
  });
  const chat = ids[0];
  for (let i = 0; i < 200; i++) {
    await source.transaction(async (m) => {
      await messages.append(
        m,
        OWNER,
        {
          session_id: chat,
          role: 'user',
          content: `message ${i} `.repeat(8),
          metadata: null,
          status: 'complete',
          generation: null,
        },
        { given: false, id: null },
        Date.now(),
      );
    });
  }

  const pick = (i: number) => ids[i % ids.length];
  console.log(`${url ? 'PostgreSQL' : 'SQLite in memory'}: µs per call, best of 3 runs`);

  await timed(`get one session, prepared (${GETS})`, GETS, (i) =>
    sessions.findOwned(manager, OWNER, pick(i)),
  );
  await timed(`get one session, findOne (${GETS})`, GETS, (i) =>
    manager.findOne(Session, { where: { id: pick(i), owner_id: OWNER } }),
  );
  await timed(`get one session, query builder (${GETS})`, GETS, (i) =>
    manager
      .createQueryBuilder(Session, 's')
      .where('s.id = :id AND s.owner_id = :owner', { id: pick(i), owner: OWNER })
      .getOne(),
  );

  const target = ids[1];
  await timed(`append, prepared (${APPENDS})`, APPENDS, () =>
    source.transaction(async (m) => {
      await messages.append(
        m,
        OWNER,
        {
          session_id: target,
          role: 'user',
          content: 'hello',
          metadata: { n: 1 },
          status: 'complete',
          generation: null,
        },
        { given: false, id: null },
        Date.now(),
      );
    }),
  );
  // TypeORM's UpdateQueryBuilder has no RETURNING on SQLite: the new time takes a read of its own.
  await timed(`append, update + findOne + insert (${APPENDS})`, APPENDS, () =>
    source.transaction(async (m) => {
      const now = Date.now();
      const result = await m.update(
        Session,
        { id: target, owner_id: OWNER },
        {
          message_count: () => '"message_count" + 1',
          last_updated_at: () =>
            `CASE WHEN "last_updated_at" + 1 > ${now} THEN "last_updated_at" + 1 ELSE ${now} END`,
        },
      );
      if (result.affected === 0) throw new Error('gone');
      const touched = await m.findOne(Session, {
        select: { id: true, last_updated_at: true },
        where: { id: target },
      });
      await m.insert(ChatMessage, {
        session_id: target,
        timestamp: touched!.last_updated_at,
        role: 'user',
        content: 'hello',
        metadata: { n: 1 },
      });
    }),
  );

  await timed(`list page of 20, prepared (${PAGES})`, PAGES, () =>
    sessions.listPage(manager, OWNER, { archived: false }, { after: null, limit: 20, skip: 0 }),
  );
  await timed(`list page of 20, find (${PAGES})`, PAGES, () =>
    manager.find(Session, {
      where: { owner_id: OWNER, archived: false },
      order: { last_updated_at: 'DESC', created_at: 'DESC', id: 'DESC' },
      take: 20,
    }),
  );
  await timed(`list total, prepared (${PAGES})`, PAGES, () =>
    counts.total(manager, OWNER, { archived: false }),
  );
  await timed(`list total, query builder (${PAGES})`, PAGES, () =>
    manager
      .createQueryBuilder(SessionCount, 'c')
      .select('COALESCE(SUM(c.n), 0)', 'total')
      .where('c.owner_id = :owner AND c.archived = :archived', { owner: OWNER, archived: false })
      .getRawOne(),
  );

  await timed(`message page of 20, prepared outline (${PAGES})`, PAGES, () =>
    messages.outline(manager, chat, {
      bounds: [],
      direction: 'ASC',
      inline: 100_000,
      limit: 20,
      skip: 0,
    }),
  );
  await timed(`message page of 20, find (${PAGES})`, PAGES, () =>
    manager.find(ChatMessage, {
      where: { session_id: chat },
      order: { timestamp: 'ASC', id: 'ASC' },
      take: 20,
    }),
  );
  const exportPage = db.sql(
    `SELECT * FROM "sessions" WHERE "owner_id" = ? AND "id" > ? ORDER BY "id" LIMIT ?`,
  );
  await timed(`export: 100 sessions by id, prepared (${PAGES / 10})`, PAGES / 10, () =>
    manager.query(exportPage, [OWNER, '', 100]),
  );
  await timed(`export: 100 sessions by id, find (${PAGES / 10})`, PAGES / 10, () =>
    sessions.pageById(manager, OWNER, {}, '', 100),
  );
  const owners = db.sql(
    `SELECT "id", "owner_id" FROM "sessions" WHERE "id" IN (${Array(500).fill('?').join(', ')})`,
  );
  await timed(`import: owners of 500 ids, prepared (${PAGES / 10})`, PAGES / 10, () =>
    manager.query(owners, ids.slice(0, 500)),
  );
  await timed(`import: owners of 500 ids, find (${PAGES / 10})`, PAGES / 10, () =>
    sessions.ownersOf(manager, ids.slice(0, 500)),
  );
  await source.destroy();
}

void main();
