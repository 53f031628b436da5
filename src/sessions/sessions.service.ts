import { ConflictException, Injectable, NotFoundException } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { randomUUID } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import type { Env } from '../config/env.validation';
import { isWritableTime } from '../common/fields/json-bounds';
import { parseIsoTimestamp } from '../common/fields/timestamps';
import { Page } from '../common/pagination/pagination';
import { ValidationProblemException } from '../common/problems/validation.pipe';
import { CursorService } from '../database/cursor.service';
import { DatabaseService } from '../database/database.service';
import { claimWriteHooks } from '../database/write-hooks';
import {
  CreateSessionDto,
  ForkSessionDto,
  ListSessionsQueryDto,
  UpdateSessionDto,
} from './dto/session.dto';
import { ChatMessagesRepository } from '../messages/chat-messages.repository';
import { messageNotInSession } from '../messages/message-problems';
import { SessionCountsRepository } from './session-counts.repository';
import { Session } from './session.entity';
import { type Bucket, type SessionKey, SessionsRepository } from './sessions.repository';

export function sessionNotFound(id: string): NotFoundException {
  return new NotFoundException(`Session with ID '${id}' not found.`);
}

/** The one order in which session-count buckets are locked, so writers never wait in a cycle. */
export const bucketOrder = (bucket: Bucket) => Number(bucket.archived) * 2 + Number(bucket.pinned);

function isSessionKey(value: unknown): value is SessionKey {
  return (
    Array.isArray(value) &&
    value.length === 3 &&
    Number.isSafeInteger(value[0]) &&
    Number.isSafeInteger(value[1]) &&
    typeof value[2] === 'string'
  );
}

/** `expires_at` as given (validated: a future ISO 8601 time, null, or left out) in epoch ms. */
const expiryOf = (text: string | null | undefined) =>
  text === undefined || text === null ? text : parseIsoTimestamp(text);

@Injectable()
export class SessionsService {
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

  create(owner: string, dto: CreateSessionDto): Promise<Session> {
    const now = Date.now();
    const session: Session = {
      id: randomUUID(),
      owner_id: owner,
      name: dto.name ?? null,
      created_at: now,
      last_updated_at: now,
      llm_model_name: this.defaultModelName,
      rag_document_ids: dto.rag_document_ids ?? null,
      metadata_tags: dto.metadata_tags ?? null,
      message_count: 0,
      archived: dto.archived ?? false,
      pinned: dto.pinned ?? false,
      current_message_id: null,
      forked_from: null,
      expires_at: expiryOf(dto.expires_at) ?? null,
    };
    return this.db.write(async (manager) => {
      await this.sessions.insert(manager, session);
      await this.counts.add(manager, owner, session, 1);
      return session;
    }, claimWriteHooks());
  }

  /** Offset (`skip`) or keyset (`cursor`) paging over the filtered list; `next` continues by cursor. */
  list(owner: string, query: ListSessionsQueryDto): Promise<Page<Session>> {
    if (query.cursor !== undefined && query.skip !== undefined) {
      throw new ValidationProblemException([
        { field: 'skip', message: 'skip cannot be combined with cursor' },
      ]);
    }
    const after = query.cursor === undefined ? null : this.decodeCursor(query.cursor);
    const filter = {
      ...(query.archived === 'any' ? {} : { archived: query.archived === 'true' }),
      ...(query.pinned === undefined ? {} : { pinned: query.pinned === 'true' }),
    };
    return this.db.read(async (manager) => {
      const items = await this.sessions.listPage(manager, owner, filter, {
        after,
        limit: query.limit,
        skip: query.skip ?? 0,
      });
      const total = await this.counts.total(manager, owner, filter);
      const last = items.at(-1);
      return {
        items,
        total,
        next:
          last && items.length === query.limit
            ? {
                cursor: this.cursors.encode({
                  v: 1,
                  k: [last.last_updated_at, last.created_at, last.id],
                }),
                limit: query.limit,
                archived: query.archived,
                ...(query.pinned === undefined ? {} : { pinned: query.pinned }),
              }
            : undefined,
      };
    });
  }

  async get(owner: string, id: string): Promise<Session> {
    const session = await this.db.read((manager) => this.sessions.findOwned(manager, owner, id));
    if (!session) throw sessionNotFound(id);
    return session;
  }

  async update(owner: string, id: string, dto: UpdateSessionDto): Promise<Session> {
    const flagsChange = dto.archived !== undefined || dto.pinned !== undefined;
    const session = await this.db.write(async (manager) => {
      const was = flagsChange ? await this.sessions.lockFlags(manager, owner, id) : null;
      const after = await this.sessions.update(manager, owner, id, {
        ...dto,
        expires_at: expiryOf(dto.expires_at),
      });
      // The answer is written from this row: a time it cannot write rolls the update back.
      if (after && !(isWritableTime(after.created_at) && isWritableTime(after.last_updated_at))) {
        throw new ConflictException(
          `Session '${id}' holds a time after the year 9999 and cannot be answered; nothing was changed.`,
        );
      }
      if (after && dto.current_message_id !== undefined) {
        after.current_message_id = await this.switchBranch(manager, after, dto.current_message_id);
      }
      if (was && after && (was.archived !== after.archived || was.pinned !== after.pinned)) {
        // Buckets in one fixed order, so two PATCHes moving opposite ways cannot deadlock.
        const moves = [
          { bucket: was, delta: -1 },
          { bucket: { archived: after.archived, pinned: after.pinned }, delta: 1 },
        ].sort((a, b) => bucketOrder(a.bucket) - bucketOrder(b.bucket));
        for (const move of moves) await this.counts.add(manager, owner, move.bucket, move.delta);
      }
      return after;
    });
    if (!session) throw sessionNotFound(id);
    return session;
  }

  /**
   * A new session of the owner holding copies of the path from the root to `message_id` (default:
   * the current message), re-stamped now and increasing along the path, so the fork is the most
   * recently active session; see docs/API.md § Branches. One transaction: the path is read, checked
   * (an `in_progress` message cannot be copied: 409) and copied together. On PostgreSQL the source
   * session's row is share-locked first, so the current message, the path and the copied rows are
   * read from one state of its tree: without it, a DELETE of the current message committing between
   * those reads made a fork that named no message answer 400 naming `message_id`, or copy a path
   * shorter than the message `forked_from` names (seen with two processes).
   */
  fork(owner: string, id: string, dto: ForkSessionDto): Promise<Session> {
    return this.db.write(async (manager) => {
      const source = await this.sessions.findOwnedShared(manager, owner, id);
      if (!source) throw sessionNotFound(id);
      const leaf = dto.message_id ?? source.current_message_id;
      const branch =
        leaf === null
          ? { entries: [] }
          : await this.messages.path(manager, id, leaf, source.message_count);
      if (!branch) {
        throw messageNotInSession('message_id', leaf);
      }
      const messages = await this.messages.byIds(
        manager,
        owner,
        id,
        branch.entries.map((entry) => entry.id),
      );
      const busy = messages.find((m) => m.status === 'in_progress');
      if (busy) {
        throw new ConflictException(
          `Message ${busy.id} is a reply still being generated; fork once it has ended.`,
        );
      }
      const now = Date.now();
      const fork: Session = {
        ...source,
        id: randomUUID(),
        name: dto.name === undefined ? source.name : dto.name,
        created_at: now,
        last_updated_at: now + Math.max(0, messages.length - 1),
        message_count: messages.length,
        archived: false,
        pinned: false,
        current_message_id: null,
        forked_from: { session_id: id, message_id: leaf },
        expires_at: null,
      };
      await this.sessions.insert(manager, fork);
      await this.counts.add(manager, owner, fork, 1);
      const copies = await this.messages.insertPath(manager, fork.id, messages, now);
      fork.current_message_id = copies.at(-1) ?? null;
      await this.sessions.setCurrent(manager, fork.id, fork.current_message_id);
      return fork;
    }, claimWriteHooks());
  }

  /**
   * Makes the newest leaf under `messageId` (a message of the session) the current message, in the
   * caller's transaction, after the session's row was updated (and so, on PostgreSQL, locked: an
   * append cannot move the current message meanwhile). The leaf stored.
   */
  private async switchBranch(
    manager: EntityManager,
    session: Session,
    messageId: number,
  ): Promise<number> {
    const leaf = await this.messages.leafUnder(
      manager,
      session.id,
      messageId,
      session.message_count,
    );
    if (leaf === null) {
      throw messageNotInSession('current_message_id', messageId);
    }
    await this.sessions.setCurrent(manager, session.id, leaf);
    return leaf;
  }

  async remove(owner: string, id: string): Promise<void> {
    const removed = await this.db.write(async (manager) => {
      const gone = await this.sessions.delete(manager, owner, id);
      if (gone) await this.counts.add(manager, owner, gone, -1);
      return gone !== null;
    });
    if (!removed) throw sessionNotFound(id);
  }

  private decodeCursor(cursor: string): SessionKey {
    const payload = this.cursors.decode(cursor) as { v?: unknown; k?: unknown };
    if (payload?.v !== 1 || !isSessionKey(payload.k)) {
      throw new ValidationProblemException([
        { field: 'cursor', message: 'cursor is not a session list cursor' },
      ]);
    }
    return payload.k;
  }
}
