import { Injectable } from '@nestjs/common';
import { DatabaseService } from '../database/database.service';
import { ChatMessage } from '../messages/chat-message.entity';
import { ChatMessagesRepository } from '../messages/chat-messages.repository';
import type { ArchivedFilter } from '../sessions/dto/session.dto';
import { Session } from '../sessions/session.entity';
import { SessionsRepository } from '../sessions/sessions.repository';
import { sessionNotFound } from '../sessions/sessions.service';
import type { ExportFormat } from './dto/export.dto';
import { inChunks, jsonExport, markdownExport, type SessionHistory } from './export-format';

/** Sessions read per query of a bulk export. */
export const SESSIONS_PER_PAGE = 100;
/** Messages read per query: small sessions share one query, a longer history is read in pages. */
export const MESSAGES_PER_PAGE = 1000;
/** Before every message in the (timestamp, id) order, whatever the timestamps. */
const START: [number, number] = [Number.MIN_SAFE_INTEGER, 0];

export interface ExportStream {
  contentType: string;
  filename: string;
  chunks: AsyncIterable<string>;
}

/**
 * Exports as streams that read the database page by page, as the client takes the bytes: memory
 * stays flat whatever the size of the store, and no lock or transaction is held while the client
 * reads (a bulk export is therefore not a point-in-time snapshot of a store being written to; a
 * quiet store exports exactly). Sessions go in id order: fixed for a session's lifetime, so every
 * session that exists for the whole export is in it exactly once.
 */
@Injectable()
export class ExportService {
  constructor(
    private readonly db: DatabaseService,
    private readonly sessions: SessionsRepository,
    private readonly messages: ChatMessagesRepository,
  ) {}

  /**
   * One of `owner`'s sessions as JSON (every message) or Markdown (the current branch: the path
   * from the root to the current message). Resolves (or throws 404, also for another owner's
   * session) before anything is sent.
   */
  async session(owner: string, id: string, format: ExportFormat): Promise<ExportStream> {
    if (format === 'markdown') {
      // One snapshot: a message deleted between the reads cannot cut the branch short.
      const { session, branch } = await this.db.readSnapshot(async (m) => {
        const session = await this.sessions.findOwned(m, owner, id);
        if (!session) throw sessionNotFound(id);
        const leaf = session.current_message_id;
        const path =
          leaf === null ? null : await this.messages.path(m, id, leaf, session.message_count);
        return { session, branch: path?.entries.map((entry) => entry.id) ?? [] };
      });
      return {
        contentType: 'text/markdown; charset=utf-8',
        filename: `${session.id}.md`,
        chunks: inChunks(
          markdownExport({
            session,
            branchLength: branch.length,
            pages: this.branchPages(owner, id, branch),
          }),
        ),
      };
    }
    const session = await this.db.read((m) => this.sessions.findOwned(m, owner, id));
    if (!session) throw sessionNotFound(id);
    return {
      contentType: 'application/json; charset=utf-8',
      filename: `${session.id}.json`,
      chunks: inChunks(withNewline(jsonExport({ session, pages: this.pages(owner, id) }))),
    };
  }

  /**
   * Every one of `owner`'s sessions (the archived filter as on the list) as NDJSON: one
   * `{session, messages}` per line.
   */
  all(owner: string, archived: ArchivedFilter): ExportStream {
    const histories = this.histories(owner, archived);
    async function* lines(): AsyncGenerator<string> {
      for await (const history of histories) yield* withNewline(jsonExport(history));
    }
    return {
      contentType: 'application/x-ndjson',
      filename: 'chat-sessions.ndjson',
      chunks: inChunks(lines()),
    };
  }

  /** The sessions the filter selects, in id order, each with its messages. */
  private async *histories(
    owner: string,
    archived: ArchivedFilter,
  ): AsyncGenerator<SessionHistory> {
    let after = '';
    for (;;) {
      // Every read names the owner: only the caller's sessions and messages are ever exported.
      const sessions = await this.db.read((m) =>
        this.sessions.pageById(
          m,
          owner,
          archived === 'any' ? {} : { archived: archived === 'true' },
          after,
          SESSIONS_PER_PAGE,
        ),
      );
      // Sessions with short histories are read together, up to a page of messages per query.
      let batch: Session[] = [];
      let batchMessages = 0;
      for (const session of sessions) {
        if (session.message_count > MESSAGES_PER_PAGE) {
          yield* this.batch(owner, batch);
          [batch, batchMessages] = [[], 0];
          yield { session, pages: this.pages(owner, session.id) };
          continue;
        }
        if (batchMessages + session.message_count > MESSAGES_PER_PAGE) {
          yield* this.batch(owner, batch);
          [batch, batchMessages] = [[], 0];
        }
        batch.push(session);
        batchMessages += session.message_count;
      }
      yield* this.batch(owner, batch);
      if (sessions.length < SESSIONS_PER_PAGE) return;
      after = sessions[sessions.length - 1].id;
    }
  }

  private async *batch(owner: string, sessions: Session[]): AsyncGenerator<SessionHistory> {
    if (sessions.length === 0) return;
    // Messages are reached through their session's owner too: an id that is not the caller's (a
    // session reassigned or recreated between two pages) reads nothing.
    const ids = sessions.map((s) => s.id);
    const messages = await this.db.read((m) =>
      this.messages.ofSessions(m, owner, ids, SESSIONS_PER_PAGE),
    );
    const bySession = new Map<string, ChatMessage[]>(sessions.map((s) => [s.id, []]));
    for (const message of messages) bySession.get(message.session_id)?.push(message);
    for (const session of sessions) {
      const messages = bySession.get(session.id)!;
      messages.sort((a, b) => a.timestamp - b.timestamp || a.id - b.id);
      yield { session, pages: [messages] };
    }
  }

  /** The messages `ids` of one session (a branch, root first), in that order, a page per query. */
  private async *branchPages(
    owner: string,
    sessionId: string,
    ids: number[],
  ): AsyncGenerator<ChatMessage[]> {
    for (let i = 0; i < ids.length; i += MESSAGES_PER_PAGE) {
      const page = ids.slice(i, i + MESSAGES_PER_PAGE);
      yield await this.db.read((m) => this.messages.byIds(m, owner, sessionId, page));
    }
  }

  /** One session's messages, oldest first, a page per query (keyset on timestamp and id). */
  private async *pages(owner: string, sessionId: string): AsyncGenerator<ChatMessage[]> {
    let [timestamp, id] = START;
    for (;;) {
      const messages = await this.db.read((m) =>
        this.messages.pageAfter(m, owner, sessionId, [timestamp, id], MESSAGES_PER_PAGE),
      );
      if (messages.length > 0) yield messages;
      if (messages.length < MESSAGES_PER_PAGE) return;
      ({ timestamp, id } = messages[messages.length - 1]);
    }
  }
}

async function* withNewline(pieces: AsyncIterable<string>): AsyncGenerator<string> {
  yield* pieces;
  yield '\n';
}
