import { ChatMessage } from '../messages/chat-message.entity';
import { mapChatMessage } from '../messages/dto/chat-message.dto';
import { mapSession } from '../sessions/dto/session.dto';
import { Session } from '../sessions/session.entity';
import { isoTimestamp } from '../common/fields/timestamps';

/** A session and its messages, oldest first, delivered page by page so no history is held whole. */
export interface SessionHistory {
  session: Session;
  pages: AsyncIterable<ChatMessage[]> | Iterable<ChatMessage[]>;
}

/** A session and the messages of its current branch, root first, page by page. */
export interface SessionBranch extends SessionHistory {
  /** How many messages the branch holds. */
  branchLength: number;
}

/**
 * `{"session":…,"messages":[…]}` written piece by piece; the bytes are exactly those of
 * `JSON.stringify({ session, messages })` for the whole history.
 */
export async function* jsonExport({ session, pages }: SessionHistory): AsyncGenerator<string> {
  yield `{"session":${JSON.stringify(mapSession(session))},"messages":[`;
  let separator = '';
  for await (const page of pages) {
    for (const message of page) {
      yield separator + JSON.stringify(mapChatMessage(message));
      separator = ',';
    }
  }
  yield ']}';
}

const ROLE_TITLES = { user: 'User', assistant: 'Assistant', system: 'System' } as const;

/**
 * The session as a Markdown document: its name as a heading, a few facts, then each message of the
 * current branch verbatim (a conversation read as the user last saw it).
 */
export async function* markdownExport({
  session,
  pages,
  branchLength,
}: SessionBranch): AsyncGenerator<string> {
  const title = session.name?.replace(/\s+/g, ' ') ?? 'Untitled session';
  const facts = [
    `- Session: \`${session.id}\``,
    `- Created: ${isoTimestamp(session.created_at)}`,
    `- Last updated: ${isoTimestamp(session.last_updated_at)}`,
    `- Messages: ${session.message_count}`,
    ...(branchLength < session.message_count
      ? [`- Current branch: ${branchLength} of them (the JSON export holds every branch)`]
      : []),
    ...(session.llm_model_name === null ? [] : [`- Model: ${session.llm_model_name}`]),
    ...(session.metadata_tags && Object.keys(session.metadata_tags).length > 0
      ? [
          `- Tags: ${Object.entries(session.metadata_tags)
            .map(([key, value]) => `${key}=${value}`)
            .join(', ')}`,
        ]
      : []),
    ...(session.archived ? ['- Archived'] : []),
    ...(session.pinned ? ['- Pinned'] : []),
  ];
  yield `# ${title}\n\n${facts.join('\n')}\n`;
  for await (const page of pages) {
    for (const message of page) {
      yield `\n## ${ROLE_TITLES[message.role]} · ${isoTimestamp(message.timestamp)}\n\n${message.content}\n`;
    }
  }
}

/** Joins small pieces into chunks of about `size` characters: one socket write per chunk, not per piece. */
export async function* inChunks(
  pieces: AsyncIterable<string>,
  size = 64 * 1024,
): AsyncGenerator<string> {
  let buffer = '';
  for await (const piece of pieces) {
    buffer += piece;
    if (buffer.length >= size) {
      yield buffer;
      buffer = '';
    }
  }
  if (buffer.length > 0) yield buffer;
}
