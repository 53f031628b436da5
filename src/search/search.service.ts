import { Injectable } from '@nestjs/common';
import { ValidationProblemException } from '../common/problems/validation.pipe';
import { DatabaseService, queryRows } from '../database/database.service';
import { ChatMessage } from '../messages/chat-message.entity';
import { MESSAGE_COLUMNS, toMessage, type MessageRow } from '../messages/messages.service';
import { Session } from '../sessions/session.entity';
import {
  SESSION_COLUMNS,
  sessionNotFound,
  toSession,
  type SessionRow,
} from '../sessions/sessions.service';
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
const ALL_IDS = [0, Number.MAX_SAFE_INTEGER];

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

type Kind = 'names' | 'messages';
type Variant = `${Kind}:${boolean}:${boolean}`;

function prefixed(columns: string, alias: string): string {
  return columns.replace(/"(\w+)"/g, `${alias}."$1"`);
}

/**
 * Full-text search over session names and message contents, through each database's own engine
 * (see the search migration): FTS5 with bm25 ranking on SQLite, a GIN-indexed tsvector with
 * ts_rank on PostgreSQL. Hits on a session's name come first (a name is the user's own summary of
 * the conversation), then message hits; each kind best match first, ties newest first. Message
 * hits are ranked among the newest RANK_WINDOW matches, which bounds the cost of very common words.
 */
@Injectable()
export class SearchService {
  private readonly sql = new Map<Variant, string>();
  private readonly sessionsByIds: string;
  private readonly sessionRange: string;

  constructor(private readonly db: DatabaseService) {
    for (const kind of ['names', 'messages'] as const) {
      for (const archived of [false, true]) {
        for (const session of [false, true]) {
          this.sql.set(`${kind}:${archived}:${session}`, this.build(kind, archived, session));
        }
      }
    }
    const ids = Array.from({ length: SEARCH_MAX_LIMIT }, () => '?').join(', ');
    this.sessionsByIds = db.sql(
      `SELECT ${SESSION_COLUMNS} FROM "sessions" WHERE "owner_id" = ? AND "id" IN (${ids})`,
    );
    // One row if the session is the owner's, with the range of its message ids (each bound one
    // index probe: MIN and MAX stay simple subqueries so both databases read just the index ends).
    this.sessionRange = db.sql(
      `SELECT (SELECT MIN("id") FROM "chat_messages" WHERE "session_id" = s."id") AS "first",
         (SELECT MAX("id") FROM "chat_messages" WHERE "session_id" = s."id") AS "last"
       FROM "sessions" s WHERE s."id" = ? AND s."owner_id" = ?`,
    );
  }

  /** The SQL of one kind of hit, with or without the archived and session filters. */
  private build(kind: Kind, byArchived: boolean, bySession: boolean): string {
    // Only the caller's sessions, named in the query itself (not filtered afterwards).
    const filters = [
      `s."owner_id" = ?`,
      ...(byArchived ? [`s."archived" = ?`] : []),
      ...(bySession ? [`s."id" = ?`] : []),
    ]
      .map((filter) => ` AND ${filter}`)
      .join('');
    const sessionColumns = prefixed(SESSION_COLUMNS, 's');
    if (kind === 'names') {
      return this.db.isSqlite
        ? `SELECT ${sessionColumns} FROM "session_names_fts"
           JOIN "session_names" n ON n."id" = "session_names_fts"."rowid"
           JOIN "sessions" s ON s."id" = n."session_id"
           WHERE "session_names_fts" MATCH ?${filters}
           ORDER BY bm25("session_names_fts"), s."last_updated_at" DESC, s."id" DESC LIMIT ?`
        : // ts_rank's normalization 1 divides by the log of the length, as bm25 favours short texts.
          this.db.sql(
            `SELECT ${sessionColumns} FROM "sessions" s, to_tsquery('simple', ?) q
             WHERE s."name_search" @@ q${filters}
             ORDER BY ts_rank(s."name_search", q, 1) DESC, s."last_updated_at" DESC, s."id" DESC LIMIT ?`,
          );
    }
    // Messages: the newest RANK_WINDOW matches (by id, within an id range) are ranked, the best
    // `limit` of them are read whole. On SQLite, CROSS JOIN fixes the join order: FTS5 streams its
    // matches newest first and the window stops the scan.
    const messageColumns = prefixed(MESSAGE_COLUMNS, 'm');
    return this.db.isSqlite
      ? `SELECT ${messageColumns} FROM (
           SELECT "id", "timestamp", "score" FROM (
             SELECT m."id" AS "id", m."timestamp" AS "timestamp", bm25("chat_messages_fts") AS "score"
             FROM "chat_messages_fts"
             CROSS JOIN "chat_messages" m ON m."id" = "chat_messages_fts"."rowid"
             CROSS JOIN "sessions" s ON s."id" = m."session_id"
             WHERE "chat_messages_fts" MATCH ? AND "chat_messages_fts"."rowid" BETWEEN ? AND ?${filters}
             ORDER BY "chat_messages_fts"."rowid" DESC LIMIT ${RANK_WINDOW}
           ) ORDER BY "score", "timestamp" DESC, "id" DESC LIMIT ?
         ) top CROSS JOIN "chat_messages" m ON m."id" = top."id"
         ORDER BY top."score", top."timestamp" DESC, top."id" DESC`
      : this.db.sql(
          `SELECT ${messageColumns} FROM (
             SELECT w."id", w."timestamp", ts_rank(w."search", w."q", 1) AS "score" FROM (
               SELECT m."id", m."timestamp", m."search", query."q"
               FROM "chat_messages" m JOIN "sessions" s ON s."id" = m."session_id",
                 to_tsquery('simple', ?) AS query("q")
               WHERE m."search" @@ query."q" AND m."id" BETWEEN ? AND ?${filters}
               ORDER BY m."id" DESC LIMIT ${RANK_WINDOW}
             ) w ORDER BY "score" DESC, w."timestamp" DESC, w."id" DESC LIMIT ?
           ) top JOIN "chat_messages" m ON m."id" = top."id"
           ORDER BY top."score" DESC, top."timestamp" DESC, top."id" DESC`,
        );
  }

  /** Searches only `owner`'s sessions and their messages. */
  async search(owner: string, query: SearchQueryDto): Promise<SearchHit[]> {
    const terms = parseSearchQuery(query.q);
    checkTerms(terms);
    const sessionId = query.session_id;
    if (sessionId !== undefined && !UUID.test(sessionId)) throw sessionNotFound(sessionId);
    if (terms.length === 0 && sessionId === undefined) return [];

    const archived = query.archived ?? (sessionId === undefined ? 'false' : 'any');
    const match = this.db.isSqlite ? toFts5Query(terms) : toTsQuery(terms);
    const filters = [
      owner,
      ...(archived === 'any' ? [] : [archived === 'true']),
      ...(sessionId === undefined ? [] : [sessionId]),
    ];
    const variant = (kind: Kind): Variant =>
      `${kind}:${archived !== 'any'}:${sessionId !== undefined}`;

    return this.db.read(async (manager) => {
      // With a session: the range of its message ids, which bounds the index scan.
      let ids = ALL_IDS;
      if (sessionId !== undefined) {
        const [range]: { first: number | string | null; last: number | string | null }[] =
          await queryRows(manager, this.sessionRange, [sessionId, owner]);
        if (!range) throw sessionNotFound(sessionId);
        ids = range.first === null ? [1, 0] : [Number(range.first), Number(range.last)];
      }
      if (terms.length === 0) return [];
      const nameRows: SessionRow[] = await queryRows(manager, this.sql.get(variant('names'))!, [
        match,
        ...filters,
        query.limit,
      ]);
      const hits: SearchHit[] = nameRows.map(toSession).map((session) => ({
        session,
        message: null,
        snippet: snippet(session.name ?? '', terms),
      }));
      const room = query.limit - hits.length;
      if (room === 0) return hits;

      const messageRows: MessageRow[] = await queryRows(
        manager,
        this.sql.get(variant('messages'))!,
        [match, ...ids, ...filters, room],
      );
      const messages = messageRows.map(toMessage);
      const sessionIds = [...new Set(messages.map((m) => m.session_id))];
      const padding = Array<null>(SEARCH_MAX_LIMIT - sessionIds.length).fill(null);
      const sessionRows: SessionRow[] = await queryRows(manager, this.sessionsByIds, [
        owner,
        ...sessionIds,
        ...padding,
      ]);
      const sessions = new Map(sessionRows.map((row) => [row.id, toSession(row)]));
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
