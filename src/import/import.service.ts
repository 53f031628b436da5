import { ConflictException, Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type { EntityManager } from 'typeorm';
import { MESSAGE_ID_MAX } from '../common/fields/json-bounds';
import type { Env } from '../config/env.validation';
import { CursorService } from '../database/cursor.service';
import { DatabaseService } from '../database/database.service';
import { claimWriteHooks } from '../database/write-hooks';
import { ChatMessagesRepository } from '../messages/chat-messages.repository';
import { SessionCountsRepository } from '../sessions/session-counts.repository';
import { SessionsRepository } from '../sessions/sessions.repository';
import { bucketOrder } from '../sessions/sessions.service';
import { ImportResultDto } from './dto/import.dto';
import { type ImportBody, readImportFile } from './import-file';
import { type ImportedMessage, type ImportedSession, nameBasedUuid } from './imported-session';
import { Pacer } from './pacer';

/** Rows per INSERT: a power of two, and smaller powers of two for the rest, so few distinct statements exist. */
const MAX_ROWS = 256;
/** Ids per lookup of existing sessions. */
const LOOKUP_IDS = 500;
/** Candidate ids per imported session (see `candidates`). */
const CANDIDATES = 8;
/**
 * How far past the highest message id ever issued an import may keep its ids, beyond one id per
 * message it brings: room for the gaps deleted messages leave, bounded so no owner can push the id
 * sequence every owner shares towards its end.
 */
export const MESSAGE_ID_HEADROOM = 1_000_000;

function rowsPerStatement(total: number): number[] {
  const sizes: number[] = [];
  for (let left = total, size = MAX_ROWS; left > 0; size /= 2) {
    while (left >= size) {
      sizes.push(size);
      left -= size;
    }
  }
  return sizes;
}

/**
 * The ids an imported session may take, in order: its own (the source's id, or the one derived from
 * a ChatGPT conversation), then each an id derived from the owner and the one before, keyed by a
 * secret of the deployment (so no one can compute another owner's chain and take it first). Another
 * owner's session never blocks an import, and yet the same file always lands on the same ids for one
 * owner.
 */
function candidates(owner: string, id: string, key: Buffer): string[] {
  const ids = [id];
  while (ids.length < CANDIDATES) ids.push(nameBasedUuid(`owner:${owner}:${ids.at(-1)}`, key));
  return ids;
}

/** Where each of the file's sessions goes: a new session under `id`, or the owner's own session `id`. */
type Placement = { id: string; insert: boolean };

/** Whether the messages may keep their ids: all of them new to this database, and within reach. */
function keepable(ids: number[], issued: number): boolean {
  const limit = Math.min(issued + ids.length + MESSAGE_ID_HEADROOM, MESSAGE_ID_MAX);
  return ids.every((id) => id > issued && id <= limit);
}

function carriedIds(sessions: ImportedSession[], placements: Placement[]): number[] {
  return sessions.flatMap(({ messages }, i) =>
    placements[i].insert ? messages.flatMap((m) => (m.id === null ? [] : [m.id])) : [],
  );
}

/**
 * Imports as one transaction: all of a file's sessions and messages, or nothing.
 *
 * The file is read and checked completely first (`readImportFile`), outside any transaction, with
 * the API's own field rules. Then multi-row INSERTs write it.
 *
 * Session ids are per owner: a session keeps its id when it is free; where another owner has it, the
 * session takes the next of its candidate ids (`candidates`), answered exactly as an unused id would
 * be. A candidate that is already this owner's session means the file was imported before: that
 * session is skipped whole (an import never merges into or overwrites a session), which makes
 * importing the same file again a no-op for its owner.
 *
 * Message ids are shared by every owner. An import keeps the ids of the messages it writes only when
 * all of them are new to this database (above the highest id it ever issued, as ids are never
 * reused) and within reach (no further above it than one id per message plus MESSAGE_ID_HEADROOM,
 * and never above MESSAGE_ID_MAX): then an export restored into a new database reads back
 * identically. Otherwise every one of them gets a new id, in file order, so each session's order
 * (timestamp, then id) is kept. The result says which (`message_ids`).
 *
 * The writing runs as a `bulkWrite` and yields to the event loop every few milliseconds: on
 * PostgreSQL other requests carry on in full; on SQLite other reads carry on (on the main
 * connection, seeing the state before the import) while other writes wait for the import's commit,
 * as SQLite has a single writer. Reading and checking the file holds nothing at all.
 */
@Injectable()
export class ImportService {
  private readonly defaultModelName: string;

  constructor(
    private readonly db: DatabaseService,
    private readonly sessions: SessionsRepository,
    private readonly counts: SessionCountsRepository,
    private readonly messages: ChatMessagesRepository,
    private readonly cursors: CursorService,
    config: ConfigService<Env, true>,
  ) {
    this.defaultModelName = config.get('DEFAULT_MODEL_NAME', { infer: true });
  }

  private get candidateKey(): Buffer {
    return this.cursors.derivedKey('import-session-ids');
  }

  /** Imported sessions belong to `owner`; see the class for where they and their messages go. */
  async import(owner: string, body: ImportBody): Promise<ImportResultDto> {
    const sessions = await readImportFile(body, this.defaultModelName);
    // PostgreSQL: reserve the ids to keep in a short transaction of its own, before the import's.
    let reserved: Set<number> | undefined;
    if (!this.db.isSqlite) {
      const planned = await this.db.read((m) => this.place(m, owner, sessions));
      const ids = carriedIds(sessions, planned);
      if (ids.length > 0) {
        const kept = await this.db.write((m) => this.reserveIds(m, ids));
        if (kept) reserved = new Set(ids);
      }
    }

    return this.db.bulkWrite(async (manager) => {
      const placements = await this.place(manager, owner, sessions);
      const ids = carriedIds(sessions, placements);
      // SQLite: this transaction is the only writer, so the high-water mark cannot move under it.
      // PostgreSQL: only ids reserved above may be kept (the placements may have changed since).
      const keep = this.db.isSqlite
        ? keepable(ids, await this.messages.sqliteHighWater(manager))
        : reserved !== undefined && ids.every((id) => reserved.has(id));
      const pacer = new Pacer();
      const inserted = sessions.flatMap((s, i) =>
        placements[i].insert ? [{ ...s, session: { ...s.session, id: placements[i].id } }] : [],
      );
      let done = 0;
      for (const size of rowsPerStatement(inserted.length)) {
        const chunk = inserted.slice(done, done + size);
        done += size;
        const written = await this.sessions.insertMany(
          manager,
          chunk.map(({ session }) => ({ ...session, owner_id: owner })),
        );
        if (written.size < chunk.length) {
          // PostgreSQL only: a concurrent write took an id between the placement and the insert.
          // Retrying places the file again (a session this owner now has is then skipped).
          const taken = chunk.find(({ session }) => !written.has(session.id));
          throw new ConflictException(
            `Nothing was imported: session ${taken?.session.id} was created by a concurrent request; retry the import.`,
          );
        }
        const messages = chunk.flatMap(({ session, messages }) =>
          messages.map((m) => ({ ...m, sessionId: session.id })),
        );
        await this.insertMessages(
          manager,
          keep ? messages.filter((m) => m.id !== null) : [],
          'kept',
          pacer,
        );
        await this.insertMessages(
          manager,
          keep ? messages.filter((m) => m.id === null) : messages,
          'new',
          pacer,
        );
        // The stored order (timestamp, then the id each message got) is the chain.
        const chunkIds = chunk.map(({ session }) => session.id);
        const newest = await this.messages.chain(manager, chunkIds, size);
        await this.sessions.setCurrentMany(manager, newest, size);
        await pacer.pace();
      }
      await this.countImported(manager, owner, inserted);
      return {
        imported: inserted.length,
        skipped: sessions.length - inserted.length,
        sessions: placements.map((p) => p.id),
        message_ids: keep || ids.length === 0 ? 'kept' : 'renumbered',
      };
    }, claimWriteHooks());
  }

  /**
   * Where each session goes (see the class): its first candidate that is this owner's session
   * (skipped) or, failing that, its first candidate that is free. All candidates taken by others
   * (only ever by design: ids other owners chose to block this one) is a 409.
   */
  private async place(
    manager: EntityManager,
    owner: string,
    sessions: ImportedSession[],
  ): Promise<Placement[]> {
    const chains = sessions.map(({ session }) => candidates(owner, session.id, this.candidateKey));
    const owners = new Map<string, string>();
    const all = chains.flat();
    for (let i = 0; i < all.length; i += LOOKUP_IDS) {
      const found = await this.sessions.ownersOf(manager, all.slice(i, i + LOOKUP_IDS));
      for (const [id, ownerId] of found) owners.set(id, ownerId);
    }
    const claimed = new Set<string>();
    return chains.map((chain) => {
      const own = chain.find((id) => owners.get(id) === owner);
      if (own !== undefined) return { id: own, insert: false };
      const free = chain.find((id) => !owners.has(id) && !claimed.has(id));
      if (free === undefined) {
        throw new ConflictException(
          `Nothing was imported: every id session ${chain[0]} could take is in use.`,
        );
      }
      claimed.add(free);
      return { id: free, insert: true };
    });
  }

  /** The list's session counts move with the sessions the import added. */
  private async countImported(
    manager: EntityManager,
    owner: string,
    imported: ImportedSession[],
  ): Promise<void> {
    const buckets = new Map<string, { archived: boolean; pinned: boolean; n: number }>();
    for (const { session } of imported) {
      const key = `${session.archived}:${session.pinned}`;
      const bucket = buckets.get(key) ?? {
        archived: session.archived,
        pinned: session.pinned,
        n: 0,
      };
      bucket.n++;
      buckets.set(key, bucket);
    }
    for (const bucket of [...buckets.values()].sort((a, b) => bucketOrder(a) - bucketOrder(b))) {
      await this.counts.add(manager, owner, bucket, bucket.n);
    }
  }

  private async insertMessages(
    manager: EntityManager,
    messages: (ImportedMessage & { sessionId: string })[],
    ids: 'kept' | 'new',
    pacer: Pacer,
  ): Promise<void> {
    let done = 0;
    for (const size of rowsPerStatement(messages.length)) {
      const rows = messages.slice(done, done + size).map((m) => ({
        id: m.id,
        session_id: m.sessionId,
        timestamp: m.timestamp,
        role: m.role,
        content: m.content,
        metadata: m.metadata,
      }));
      done += size;
      await this.messages.insertMany(manager, rows, ids === 'kept');
      await pacer.pace();
    }
  }

  /**
   * PostgreSQL: if `ids` may be kept (see `keepable`), moves the id sequence past the highest of
   * them, so appends running alongside the import never draw an id the import is about to insert,
   * and answers true; otherwise leaves the sequence alone (locked until this short transaction
   * commits, so reading and moving it is one atomic step).
   */
  private async reserveIds(manager: EntityManager, ids: number[]): Promise<boolean> {
    const issued = await this.messages.lockIdSequence(manager);
    if (!keepable(ids, issued)) return false;
    const highest = ids.reduce((max, id) => Math.max(max, id), 0);
    await this.messages.moveIdSequence(manager, highest);
    return true;
  }
}
