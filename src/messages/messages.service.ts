import { ConflictException, Injectable, NotFoundException } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { exactMessageId, TIME_FORMAT_MAX_MS } from '../common/fields/json-bounds';
import { Page, StreamedPage } from '../common/pagination/pagination';
import { ValidationProblemException } from '../common/problems/validation.pipe';
import { DatabaseService } from '../database/database.service';
import { claimWriteHooks } from '../database/write-hooks';
import { SessionsRepository } from '../sessions/sessions.repository';
import { sessionNotFound } from '../sessions/sessions.service';
import { ChatMessage } from './chat-message.entity';
import { messageNotInSession } from './message-problems';
import {
  type BranchEntry,
  ChatMessagesRepository,
  type AppendedMessage,
  type KeyBound,
  type OutlineEntry,
} from './chat-messages.repository';
import {
  type BranchMessage,
  CreateChatMessageDto,
  ListMessagesQueryDto,
} from './dto/chat-message.dto';

function refuseSkipWithCursor(query: ListMessagesQueryDto): void {
  const keyset = query.after !== undefined || query.before !== undefined;
  if (keyset && query.skip !== undefined) {
    throw new ValidationProblemException([
      { field: 'skip', message: 'skip cannot be combined with after or before' },
    ]);
  }
}

/**
 * The page of a branch listing out of the whole path (root first): in the list's order, after and
 * before as positions on the path, then skip and limit, as a plain listing pages its rows.
 */
function branchPage(
  path: BranchEntry[],
  query: ListMessagesQueryDto,
): { page: BranchEntry[]; full: boolean } {
  const ordered = query.order === 'asc' ? path : [...path].reverse();
  const position = (param: 'after' | 'before'): number | undefined => {
    const id = query[param];
    if (id === undefined) return undefined;
    const at = ordered.findIndex((entry) => entry.id === id);
    if (at < 0) {
      throw messageNotInSession(param, id, 'on this branch');
    }
    return at;
  };
  const after = position('after');
  const before = position('before');
  const from = after === undefined ? 0 : after + 1;
  const to = before ?? ordered.length;
  const page =
    before !== undefined && after === undefined
      ? ordered.slice(Math.max(0, to - query.limit), to)
      : ordered.slice(from + (query.skip ?? 0), to).slice(0, query.limit);
  return { page, full: page.length === query.limit };
}

function parentInProgress(): ConflictException {
  return new ConflictException(
    'The parent message is a reply still being generated: wait for it to end, or cancel it.',
  );
}

function messageNotFound(sessionId: string, messageId: string): NotFoundException {
  return new NotFoundException(
    `Message with ID '${messageId}' not found in session '${sessionId}'.`,
  );
}

/** A message id from the path: anything but a plain positive integer names no message. */
function parseMessageId(text: string): number | null {
  return /^\d{1,15}$/.test(text) ? Number(text) : null;
}

/**
 * What a page's outline may hold, whatever its limit: a row is in it when it weighs at most this
 * over the limit (2 KiB at the default 1000). A page whose rows all are is answered whole.
 */
const INLINE_BYTES = 2 * 1024 * 1024;
/** A streamed page is read in chunks of about this much (at least a row each). */
const CHUNK_BYTES = 1024 * 1024;

type Inlined = OutlineEntry & { message: ChatMessage };

function inlined(entry: OutlineEntry): entry is Inlined {
  return entry.message !== null;
}

/** Consecutive rows of about CHUNK_BYTES each, in the page's order. */
function planChunks(rows: OutlineEntry[]): OutlineEntry[][] {
  const plan: OutlineEntry[][] = [];
  let chunk: OutlineEntry[] = [];
  let size = 0;
  for (const row of rows) {
    if (chunk.length > 0 && size + row.weight > CHUNK_BYTES) {
      plan.push(chunk);
      [chunk, size] = [[], 0];
    }
    chunk.push(row);
    size += row.weight;
  }
  if (chunk.length > 0) plan.push(chunk);
  return plan;
}

@Injectable()
export class MessagesService {
  constructor(
    private readonly db: DatabaseService,
    private readonly sessions: SessionsRepository,
    private readonly messages: ChatMessagesRepository,
  ) {}

  /**
   * Atomic: the touch of the session, the insert and the move of the session's current message
   * commit together (one statement on PostgreSQL, one transaction on SQLite or with an
   * Idempotency-Key), so a message racing a DELETE of its session is either stored before the
   * delete (and removed by it) or answered 404 — never acknowledged and lost, never left orphaned.
   * The touch of the session row comes first: it locks the row until commit, so appends to one
   * session (and a DELETE of it or of one of its messages) queue up behind each other, and each
   * append reads the current message the previous one left. A session whose time cannot move on
   * within the contract's format is refused (409) with nothing written.
   *
   * The parent: `parent_id` omitted → the current message; null → a new root; otherwise a message of
   * this session, which the database's foreign key checks (400 naming `parent_id` if it is not); a
   * parent that is a reply still being generated is refused (409).
   */
  append(owner: string, sessionId: string, dto: CreateChatMessageDto): Promise<ChatMessage> {
    return this.store(
      owner,
      {
        session_id: sessionId,
        role: dto.role ?? 'user',
        content: dto.content,
        metadata: dto.metadata ?? null,
        status: 'complete',
        generation: null,
      },
      { given: dto.parent_id !== undefined, id: dto.parent_id ?? null },
    );
  }

  /**
   * `append`'s write, shared with replies (RepliesService), which store an `in_progress` assistant
   * message the same way and run `check` on it before commit (so in a transaction: `check` may
   * refuse the reply, e.g. an empty prompt, and nothing is written).
   */
  store(
    owner: string,
    fields: AppendedMessage,
    parent: { given: boolean; id: number | null },
    check?: (manager: EntityManager, stored: ChatMessage) => Promise<void>,
  ): Promise<ChatMessage> {
    const sessionId = fields.session_id;
    const hooks = claimWriteHooks();
    const work = async (manager: EntityManager): Promise<ChatMessage> => {
      const stored = await this.messages.append(manager, owner, fields, parent, Date.now());
      if (stored === 'unknown parent') {
        throw messageNotInSession('parent_id', parent.id);
      }
      if (stored === 'parent in progress') throw parentInProgress();
      if (!stored) {
        // The touch moved no row: no such session of the owner's, or its time is at the end of the
        // format. Only the latter, still true now, is a 409 (the session may have appeared since).
        const session = await this.sessions.findOwned(manager, owner, sessionId);
        if (session && session.last_updated_at >= TIME_FORMAT_MAX_MS) {
          throw new ConflictException(
            `Session '${sessionId}' was last active at a time after the year 9999: no later message can be stamped.`,
          );
        }
        throw sessionNotFound(sessionId);
      }
      const id = exactMessageId(stored.id);
      // Only a store whose id sequence was pushed to its end gets here; the operator must see it,
      // and the message must not stay: a transaction rolls it back, a lone statement is undone.
      if (id === null) {
        if (!this.db.isSqlite && !hooks) {
          await this.db.write(async (undo) => {
            await this.sessions.untouch(undo, owner, sessionId);
            await this.messages.delete(undo, sessionId, stored.id);
            const leaf = await this.messages.newestLeaf(undo, sessionId, stored.parent_id);
            await this.sessions.setCurrent(undo, sessionId, leaf);
          });
        }
        throw new Error(`Message ids are exhausted: the database issued ${stored.id}`);
      }
      const message: ChatMessage = {
        id,
        timestamp: stored.timestamp,
        ...fields,
        parent_id: stored.parent_id,
      };
      await check?.(manager, message);
      return message;
    };
    return check ? this.db.write(work, hooks) : this.db.writeStatement(work, hooks);
  }

  /**
   * Ordered by (timestamp, id), ascending or descending. Offset paging with `skip`; keyset paging
   * with `after` / `before` (message ids of this session). `before` alone returns the `limit`
   * messages nearest to it, still in the list's order. A full page names the next one by `after`.
   *
   * One statement reads the page's outline (see ChatMessagesRepository.outline). A page whose rows
   * are all in it (at most INLINE_BYTES) is answered whole from it, as before; so is one whose rows
   * fit in one chunk (CHUNK_BYTES), read by a second statement. A larger one (up to 1000 messages
   * of 100,000 characters: ~100 MB of JSON) is streamed: the outline already gives the headers (how
   * many rows, the last one's id), and the rows are read a chunk at a time as the client takes
   * them, so memory stays at about a chunk per response.
   */
  list(
    owner: string,
    sessionId: string,
    query: ListMessagesQueryDto,
  ): Promise<Page<ChatMessage> | StreamedPage<ChatMessage>> {
    refuseSkipWithCursor(query);
    const ascending = query.order === 'asc';
    return this.db.read(async (manager) => {
      const total = await this.sessions.messageCount(manager, owner, sessionId);
      if (total === null) throw sessionNotFound(sessionId);

      const bounds: KeyBound[] = [];
      for (const param of ['after', 'before'] as const) {
        const id = query[param];
        if (id === undefined) continue;
        const key = await this.messages.position(manager, sessionId, id);
        if (!key) {
          throw messageNotInSession(param, id);
        }
        // "after" means later in the list's order: later in time when ascending, earlier when not.
        const later = (param === 'after') === ascending;
        bounds.push({ op: later ? '>' : '<', key });
      }
      // `before` alone: read backwards from the cursor to get the nearest messages, then flip.
      const backwards = query.before !== undefined && query.after === undefined;
      const rows = await this.messages.outline(manager, sessionId, {
        bounds,
        direction: ascending !== backwards ? 'ASC' : 'DESC',
        inline: Math.floor(INLINE_BYTES / query.limit),
        limit: query.limit,
        skip: query.skip ?? 0,
      });
      if (backwards) rows.reverse();
      const last = rows.at(-1);
      const headers = {
        total,
        next:
          last && rows.length === query.limit
            ? {
                after: last.id,
                ...(query.before === undefined ? {} : { before: query.before }),
                limit: query.limit,
                order: query.order,
              }
            : undefined,
      };
      if (rows.every(inlined)) {
        return { items: rows.map((row) => row.message), ...headers };
      }
      const plan = planChunks(rows);
      // One chunk's worth is read at once and answered whole: streaming costs more per byte
      // (200 messages of 3,000 characters: 9.4 ms of CPU streamed against 6.3 ms whole).
      if (plan.length === 1) {
        const items = await this.range(owner, sessionId, plan[0], ascending, manager);
        return { items, ...headers };
      }
      return { chunks: this.chunks(owner, sessionId, plan, ascending), ...headers };
    });
  }

  /**
   * A branch listing (`?branch=current` or `?branch={message_id}`): the path from the root to that
   * message, paged like a plain listing, each message with its siblings. The path comes from the
   * session's tree read whole (which also gives the siblings) or, for a session of more than
   * SHAPE_MAX messages, from a recursive statement (the siblings then by a statement of their own;
   * see ChatMessagesRepository.path); one statement reads the page's outline, its rows inlined
   * where they are small; a page of more than CHUNK_BYTES is read again and streamed a chunk at a
   * time, as `list` does. The next page's link names the branch
   * by its last message, so paging stays on the same branch if the current one moves meanwhile.
   * The statements read one snapshot (DatabaseService.readSnapshot): read one by one, a DELETE of
   * the current message committing between the read of the session and of the path made
   * `?branch=current` answer 400 naming `branch` (PostgreSQL, 19 of 200 races in
   * test/tree-concurrency).
   */
  branch(
    owner: string,
    sessionId: string,
    query: ListMessagesQueryDto & { branch: string },
  ): Promise<Page<BranchMessage> | StreamedPage<BranchMessage>> {
    refuseSkipWithCursor(query);
    return this.db.readSnapshot(async (manager) => {
      const session = await this.sessions.findOwned(manager, owner, sessionId);
      if (!session) throw sessionNotFound(sessionId);
      const leaf = query.branch === 'current' ? session.current_message_id : Number(query.branch);
      const branch =
        leaf === null
          ? { entries: [], shape: null }
          : await this.messages.path(manager, sessionId, leaf, session.message_count);
      if (!branch) {
        throw messageNotInSession('branch', leaf);
      }
      const { page, full } = branchPage(branch.entries, query);
      const last = page.at(-1);
      const headers = {
        total: branch.entries.length,
        next:
          full && last && leaf !== null
            ? {
                branch: leaf,
                after: last.id,
                ...(query.before === undefined ? {} : { before: query.before }),
                limit: query.limit,
                order: query.order,
              }
            : undefined,
      };
      const siblings = await this.messages.children(
        manager,
        sessionId,
        [...new Set(page.map((entry) => entry.parentId))],
        branch.shape,
      );
      const withSiblings = (messages: ChatMessage[]): BranchMessage[] =>
        messages.map((message) => ({
          message,
          siblingIds: siblings.get(message.parent_id) ?? [message.id],
        }));
      const rows = await this.messages.outlineOf(
        manager,
        sessionId,
        page.map((entry) => entry.id),
        Math.floor(INLINE_BYTES / query.limit),
      );
      if (rows.every(inlined)) {
        return { items: withSiblings(rows.map((row) => row.message)), ...headers };
      }
      const plan = planChunks(rows);
      const read = (chunk: OutlineEntry[], on: EntityManager) =>
        this.messages.byIds(
          on,
          owner,
          sessionId,
          chunk.map((entry) => entry.id),
        );
      if (plan.length === 1) {
        return { items: withSiblings(await read(plan[0], manager)), ...headers };
      }
      const db = this.db;
      async function* chunks(): AsyncGenerator<BranchMessage[]> {
        for (let chunk = plan.shift(); chunk; chunk = plan.shift()) {
          const rows = chunk;
          yield withSiblings(await db.read((on) => read(rows, on)));
        }
      }
      return { chunks: chunks(), ...headers };
    });
  }

  /**
   * The rows of a streamed page, a chunk at a time: from the outline when it holds the chunk's
   * content, else read again by their (timestamp, id) range. A row deleted meanwhile is left out;
   * no row can appear in a range (appends are stamped after every message of their session), and
   * the LIMIT holds a chunk to its planned size regardless. Each read names the owner, as the
   * session could change hands between two chunks.
   */
  private async *chunks(
    owner: string,
    sessionId: string,
    plan: OutlineEntry[][],
    ascending: boolean,
  ): AsyncGenerator<ChatMessage[]> {
    for (let chunk = plan.shift(); chunk; chunk = plan.shift()) {
      if (chunk.every(inlined)) {
        yield chunk.map((row) => row.message);
        continue;
      }
      yield await this.db.read((manager) =>
        this.range(owner, sessionId, chunk, ascending, manager),
      );
    }
  }

  /** The rows from the first of `chunk` to its last, as they are now. */
  private range(
    owner: string,
    sessionId: string,
    chunk: OutlineEntry[],
    ascending: boolean,
    manager: EntityManager,
  ): Promise<ChatMessage[]> {
    const [from, to] = [chunk[0], chunk[chunk.length - 1]];
    const [low, high] = ascending ? [from, to] : [to, from];
    return this.messages.range(manager, owner, sessionId, {
      low: [low.timestamp, low.id],
      high: [high.timestamp, high.id],
      ascending,
      limit: chunk.length,
    });
  }

  async get(owner: string, sessionId: string, messageId: string): Promise<ChatMessage> {
    const id = parseMessageId(messageId);
    const message =
      id === null
        ? null
        : await this.db.read((manager) => this.messages.findOwned(manager, owner, sessionId, id));
    if (!message) throw messageNotFound(sessionId, messageId);
    return message;
  }

  /**
   * `message_count` drops by one; `last_updated_at` stays (it tracks activity, not content). The
   * message's children move up to its parent (a root's become roots), so nothing else is lost. If
   * it was the current message, the current message becomes the newest leaf under its parent (for
   * a root: under the newest remaining root), or null when nothing is left. The count is
   * decremented first (locking the session row, as appends do: one lock order for every write, and
   * no append can attach to the message meanwhile), and the transaction rolls back if the message
   * is not there — e.g. a concurrent DELETE of the same message got it first.
   */
  async remove(owner: string, sessionId: string, messageId: string): Promise<void> {
    const id = parseMessageId(messageId);
    if (id === null) throw messageNotFound(sessionId, messageId);
    await this.db.write(async (manager) => {
      const session = await this.sessions.untouch(manager, owner, sessionId);
      if (!session) throw messageNotFound(sessionId, messageId);
      const deleted = await this.messages.delete(manager, sessionId, id);
      if (!deleted) throw messageNotFound(sessionId, messageId);
      if (session.currentMessageId === id) {
        const leaf = await this.messages.newestLeaf(manager, sessionId, deleted.parentId);
        await this.sessions.setCurrent(manager, sessionId, leaf);
      }
    });
  }
}
