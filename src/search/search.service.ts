import { Injectable } from '@nestjs/common';
import { ValidationProblemException } from '../common/problems/validation.pipe';
import { DatabaseService } from '../database/database.service';
import { ChatMessage } from '../messages/chat-message.entity';
import { ChatMessagesRepository } from '../messages/chat-messages.repository';
import { Session } from '../sessions/session.entity';
import { SessionsRepository } from '../sessions/sessions.repository';
import { sessionNotFound } from '../sessions/sessions.service';
import { SearchQueryDto, SEARCH_MAX_LIMIT } from './dto/search.dto';
import { parseSearchQuery, toFts5Query, toTsQuery, type SearchTerm } from './search-query';
import { snippet } from './snippet';

export interface SearchHit {
  session: Session;
  message: ChatMessage | null;
  snippet: string;
}

/** More terms than this is not a search any more; each one is an index lookup. */
export const MAX_TERMS = 32;
/** PostgreSQL refuses lexemes over 2047 bytes; no real word is this long. */
export const MAX_WORD_LENGTH = 255;
/**
 * How many matching messages are ranked: the newest ones. Ranking every match of a word found in
 * most messages costs about a second per million messages (and on SQLite it runs on the event
 * loop); a query matching fewer messages than this, as specific queries do, is ranked whole.
 */
export const RANK_WINDOW = 20_000;
const ALL_IDS: [number, number] = [0, Number.MAX_SAFE_INTEGER];

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Full-text search over session names and message contents, through each database's own engine
 * (see the search migration and the repositories' `searchNames` / `searchContents`): FTS5 with
 * bm25 ranking on SQLite, a GIN-indexed tsvector with ts_rank on PostgreSQL. Hits on a session's
 * name come first (a name is the user's own summary of the conversation), then message hits; each
 * kind best match first, ties newest first. Message hits are ranked among the newest RANK_WINDOW
 * matches, which bounds the cost of very common words.
 */
@Injectable()
export class SearchService {
  constructor(
    private readonly db: DatabaseService,
    private readonly sessions: SessionsRepository,
    private readonly messages: ChatMessagesRepository,
  ) {}

  /** Searches only `owner`'s sessions and their messages. */
  async search(owner: string, query: SearchQueryDto): Promise<SearchHit[]> {
    const terms = parseSearchQuery(query.q);
    checkTerms(terms);
    const sessionId = query.session_id;
    if (sessionId !== undefined && !UUID.test(sessionId)) throw sessionNotFound(sessionId);
    if (terms.length === 0 && sessionId === undefined) return [];

    const archived = query.archived ?? (sessionId === undefined ? 'false' : 'any');
    const filter = {
      owner,
      match: this.db.isSqlite ? toFts5Query(terms) : toTsQuery(terms),
      ...(archived === 'any' ? {} : { archived: archived === 'true' }),
      ...(sessionId === undefined ? {} : { sessionId }),
    };

    return this.db.read(async (manager) => {
      // With a session: the range of its message ids, which bounds the index scan.
      let ids = ALL_IDS;
      if (sessionId !== undefined) {
        if (!(await this.sessions.isOwned(manager, owner, sessionId))) {
          throw sessionNotFound(sessionId);
        }
        ids = (await this.messages.idRange(manager, sessionId)) ?? [1, 0];
      }
      if (terms.length === 0) return [];
      const named = await this.sessions.searchNames(manager, { ...filter, limit: query.limit });
      const hits: SearchHit[] = named.map((session) => ({
        session,
        message: null,
        snippet: snippet(session.name ?? '', terms),
      }));
      const room = query.limit - hits.length;
      if (room === 0) return hits;

      const messages = await this.messages.searchContents(manager, {
        ...filter,
        ids,
        window: RANK_WINDOW,
        limit: room,
      });
      const sessionIds = [...new Set(messages.map((m) => m.session_id))];
      const found = await this.sessions.findManyOwned(manager, owner, sessionIds, SEARCH_MAX_LIMIT);
      const sessions = new Map(found.map((session) => [session.id, session]));
      for (const message of messages) {
        // On PostgreSQL the statements are not one snapshot: a session deleted in between is gone.
        const session = sessions.get(message.session_id);
        if (session) hits.push({ session, message, snippet: snippet(message.content, terms) });
      }
      return hits;
    });
  }
}

function checkTerms(terms: SearchTerm[]): void {
  if (terms.length > MAX_TERMS) {
    throw new ValidationProblemException([
      { field: 'q', message: `q has ${terms.length} terms; at most ${MAX_TERMS} are allowed` },
    ]);
  }
  if (terms.some((term) => term.words.some((word) => word.length > MAX_WORD_LENGTH))) {
    throw new ValidationProblemException([
      { field: 'q', message: `q has a word longer than ${MAX_WORD_LENGTH} characters` },
    ]);
  }
}
