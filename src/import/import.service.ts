import { ConflictException, Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type { EntityManager } from 'typeorm';
import { MESSAGE_ID_MAX } from '../common/fields/json-bounds';
import type { Env } from '../config/env.validation';
import { CursorService } from '../database/cursor.service';
import { DatabaseService } from '../database/database.service';
import { claimWriteHooks } from '../database/write-hooks';
import { ChatMessagesRepository, type ImportedRow } from '../messages/chat-messages.repository';
import { SessionCountsRepository } from '../sessions/session-counts.repository';
import type { Session } from '../sessions/session.entity';
import { SessionsRepository } from '../sessions/sessions.repository';
import { bucketOrder } from '../sessions/sessions.service';
import { ImportResultDto } from './dto/import.dto';
import { type ImportBody, readImportFile } from './import-file';
import { type ImportedSession, nameBasedUuid, parentsFirst } from './imported-session';
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

/** The ids an import's messages get (see `planIds`). */
interface IdPlan {
  /** Per session inserted (by its index in the file): each message's id, in the file's order. */
  ids: Map<number, number[]>;
  /** The sessions (by index) whose messages the file gave ids to and that got new ones. */
  renumbered: number[];
  /** The highest id the plan gives. */
  highest: number;
}

/** The messages of one session as rows, each parent before its children, and its current message. */
function sessionRows(
  imported: ImportedSession,
  sessionId: string,
  ids: number[],
): { rows: ImportedRow[]; current: number | null } {
  const { messages } = imported;
  // (timestamp, id) order, which a chain follows and where the newest message is last.
  let byTime: number[] | undefined;
  const timeOrder = () =>
    (byTime ??= messages
      .map((_, i) => i)
      .sort((a, b) => messages[a].timestamp - messages[b].timestamp || ids[a] - ids[b]));
  let parents = messages.map((m) => m.parent);
  if (imported.shape === 'chain') {
    parents = Array<number | null>(messages.length).fill(null);
    const order = timeOrder();
    for (let k = 1; k < order.length; k++) parents[order[k]] = order[k - 1];
  }
  const current = imported.current === 'newest' ? timeOrder().at(-1)! : imported.current;
  const rows = parentsFirst(parents).map((i) => {
    const m = messages[i];
    const parent = parents[i];
    return {
      id: ids[i],
      session_id: sessionId,
      timestamp: m.timestamp,
      parent_id: parent === null ? null : ids[parent],
      role: m.role,
      content: m.content,
      metadata: m.metadata,
      status: m.status,
      generation: m.generation,
    };
  });
  return { rows, current: current === null ? null : ids[current] };
}

function retry(detail: string): ConflictException {
  return new ConflictException(`Nothing was imported: ${detail}; retry the import.`);
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
 * Message ids are shared by every owner. A session keeps the ids the file gives its messages when
 * none of them is a message now and all are within reach (no further above the highest id ever
 * issued than one id per message of the import plus MESSAGE_ID_HEADROOM, and never above
 * MESSAGE_ID_MAX): then an export restored (into a new database, or after its sessions were
 * deleted) reads back identically. Otherwise each of its messages gets a new id, in file order, so
 * its order (timestamp, then id) is kept, and its parent links and current message follow the new
 * ids. The result names those sessions (`renumbered_sessions`). New ids are given above every id
 * kept and ever issued, before anything is inserted, so each message is inserted with its parent's
 * id, parents first (the foreign key checks every statement).
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
    // PostgreSQL: the ids are given in a short transaction of its own, before the import's, which
    // holds the id sequence (and so every append) only while it moves the sequence past them.
    let planned: IdPlan | undefined;
    if (!this.db.isSqlite) {
      const placements = await this.db.read((m) => this.place(m, owner, sessions));
      planned = await this.db.write(async (m) => {
        const issued = await this.messages.lockIdSequence(m);
        const plan = await this.planIds(m, sessions, placements, issued);
        if (plan.highest > issued) await this.messages.moveIdSequence(m, plan.highest);
        return plan;
      });
    }

    return this.db.bulkWrite(async (manager) => {
      const placements = await this.place(manager, owner, sessions);
      // SQLite: this transaction is the only writer, so nothing can take an id under it.
      const plan =
        planned ??
        (await this.planIds(
          manager,
          sessions,
          placements,
          await this.messages.sqliteHighWater(manager),
        ));
      const pacer = new Pacer();
      const inserted = sessions.flatMap((s, i) =>
        placements[i].insert ? [{ index: i, imported: s, id: placements[i].id }] : [],
      );
      let done = 0;
      for (const size of rowsPerStatement(inserted.length)) {
        const chunk = inserted.slice(done, done + size);
        done += size;
        const messages: ImportedRow[] = [];
        const stored: Session[] = [];
        for (const { index, imported, id } of chunk) {
          const ids = plan.ids.get(index);
          // PostgreSQL only: a session placed since the ids were given (its namesake was deleted).
          if (!ids) throw retry(`session ${id} was deleted by a concurrent request`);
          const { rows, current } = sessionRows(imported, id, ids);
          for (const row of rows) messages.push(row);
          stored.push({ ...imported.session, id, owner_id: owner, current_message_id: current });
          await pacer.pace();
        }
        const written = await this.sessions.insertMany(manager, stored);
        if (written.size < chunk.length) {
          // PostgreSQL only: a concurrent write took an id between the placement and the insert.
          // Retrying places the file again (a session this owner now has is then skipped).
          const taken = chunk.find(({ id }) => !written.has(id));
          throw retry(`session ${taken?.id} was created by a concurrent request`);
        }
        await this.insertMessages(manager, messages, pacer);
        await pacer.pace();
      }
      await this.countImported(
        manager,
        owner,
        inserted.map(({ imported }) => imported),
      );
      const renumbered = plan.renumbered.filter((i) => placements[i].insert);
      return {
        imported: inserted.length,
        skipped: sessions.length - inserted.length,
        sessions: placements.map((p) => p.id),
        message_ids: renumbered.length > 0 ? 'renumbered' : 'kept',
        renumbered_sessions: renumbered.map((i) => placements[i].id),
      };
    }, claimWriteHooks());
  }

  /**
   * The ids of the messages of the sessions `placements` inserts (see the class), `issued` being
   * the highest id ever issued. Ids up to `issued` are looked up: those that are messages now are
   * taken. Nothing is written.
   */
  private async planIds(
    manager: EntityManager,
    sessions: ImportedSession[],
    placements: Placement[],
    issued: number,
  ): Promise<IdPlan> {
    const inserted = sessions.flatMap((_, i) => (placements[i].insert ? [i] : []));
    const count = inserted.reduce((n, i) => n + sessions[i].messages.length, 0);
    const limit = Math.min(issued + count + MESSAGE_ID_HEADROOM, MESSAGE_ID_MAX);
    const low = inserted.flatMap((i) =>
      sessions[i].messages.flatMap((m) => (m.id !== null && m.id <= issued ? [m.id] : [])),
    );
    const taken = await this.messages.existingIds(manager, low);
    const keeps = (i: number) =>
      sessions[i].messages.every((m) => m.id === null || (m.id <= limit && !taken.has(m.id)));
    const pacer = new Pacer();
    let highest = issued;
    const kept = new Set<number>();
    for (const i of inserted) {
      if (keeps(i)) {
        kept.add(i);
        for (const m of sessions[i].messages) if (m.id !== null) highest = Math.max(highest, m.id);
      }
      await pacer.pace();
    }
    const ids = new Map<number, number[]>();
    const renumbered: number[] = [];
    for (const i of inserted) {
      const keep = kept.has(i);
      if (!keep && sessions[i].messages.some((m) => m.id !== null)) renumbered.push(i);
      ids.set(
        i,
        sessions[i].messages.map((m) => (keep && m.id !== null ? m.id : ++highest)),
      );
      await pacer.pace();
    }
    return { ids, renumbered, highest };
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
    messages: ImportedRow[],
    pacer: Pacer,
  ): Promise<void> {
    let done = 0;
    for (const size of rowsPerStatement(messages.length)) {
      const rows = messages.slice(done, done + size);
      done += size;
      // PostgreSQL only: ids looked up as free were inserted meanwhile by a concurrent import.
      if ((await this.messages.insertMany(manager, rows)) === 'id taken') {
        throw retry('a concurrent import stored messages under the same ids');
      }
      await pacer.pace();
    }
  }
}
