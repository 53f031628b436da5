import { length } from 'class-validator';
import { createHash } from 'node:crypto';
import { isPlainObject } from '../common/json-bounds';
import type { MessageRole } from '../messages/chat-message.entity';
import { CONTENT_MAX_LENGTH } from '../messages/dto/chat-message.dto';
import type { ImportProblems } from './import-problems';
import type { ImportedMessage, ImportedSession, Location } from './imported-session';

const ROLES = new Set<string>(['user', 'assistant', 'system']);
const TEXT_CONTENT = new Set(['text', 'multimodal_text']);
const KEY_MAX_LENGTH = 200;
const NAME_MAX_LENGTH = 200;
// eslint-disable-next-line no-control-regex -- matching U+0000 is the point
const NUL = /\u0000/;

/**
 * The session id of a ChatGPT conversation: a name-based id (SHA-256 of the conversation's id) in
 * UUID v4 layout. The same conversation always maps to the same session, so importing an export
 * twice finds the session the first import created and skips it, with no mapping table.
 */
export function chatGptSessionId(conversationKey: string): string {
  const bytes = createHash('sha256').update(`chatgpt:${conversationKey}`).digest().subarray(0, 16);
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

interface Turn {
  role: MessageRole;
  content: string;
  /** Epoch ms, or null when the node has no create time. */
  time: number | null;
  metadata: Record<string, string>;
}

const seconds = (value: unknown): number | null | undefined =>
  value === null || value === undefined
    ? null
    : typeof value === 'number' && Number.isFinite(value)
      ? Math.round(value * 1000)
      : undefined;

/**
 * One conversation of a ChatGPT data export (`conversations.json`). The conversation is a tree
 * (`mapping`: node id → `{message, parent, children}`) holding every edited or regenerated branch;
 * the one the user last saw ends at `current_node`, so the history is that node and its ancestors,
 * root first. Kept: user, assistant and system messages with text (`text`, or the text parts of
 * `multimodal_text`), their non-empty string parts joined by newlines. Skipped: empty nodes, tool messages,
 * assistant messages addressed to a tool, other content types (code, browsing, reasoning…) and
 * messages hidden from the conversation. Times are the nodes' create times (seconds → ms); a node
 * without one, or with one earlier than the message before it, takes the previous message's time,
 * so the history reads back in branch order.
 */
export function readChatGptConversation(
  value: Record<string, unknown>,
  at: Location,
  problems: ImportProblems,
  defaultModelName: string,
): ImportedSession | undefined {
  const before = problems.count;
  const rawKey = value.conversation_id ?? value.id;
  const key = typeof rawKey === 'string' ? rawKey : undefined;
  const title = typeof value.title === 'string' ? value.title : undefined;
  const subject = `conversation ${title ? `'${title.slice(0, 60)}' ` : ''}(id ${key?.slice(0, KEY_MAX_LENGTH) ?? 'missing'})`;
  const fail = (path: string, message: string): undefined => {
    problems.add(at.field(path), `${subject}: ${path} ${message}`);
    return undefined;
  };

  if (key === undefined || key.length === 0 || key.length > KEY_MAX_LENGTH || NUL.test(key)) {
    fail(
      value.conversation_id === undefined ? 'id' : 'conversation_id',
      `must be the conversation's id (1 to ${KEY_MAX_LENGTH} characters)`,
    );
  }
  if (value.title !== undefined && value.title !== null && typeof value.title !== 'string') {
    fail('title', 'must be a string or null');
  } else if (title !== undefined && NUL.test(title)) {
    fail('title', 'must not contain NUL (U+0000) characters');
  }
  const created = seconds(value.create_time);
  if (created === undefined)
    fail('create_time', 'must be a time in seconds since the epoch, or null');
  const updated = seconds(value.update_time);
  if (updated === undefined)
    fail('update_time', 'must be a time in seconds since the epoch, or null');

  const mapping = value.mapping;
  if (!isPlainObject(mapping)) return fail('mapping', 'must be an object of nodes');
  const current = value.current_node;
  if (typeof current !== 'string' || !Object.hasOwn(mapping, current)) {
    return fail('current_node', 'must be the id of a node in mapping');
  }

  // From current_node up through the parents to the root.
  const branch: [string, Record<string, unknown>][] = [];
  const seen = new Set<string>();
  for (let id: string | undefined = current; id !== undefined;) {
    const node: unknown = mapping[id];
    const path = `mapping[${JSON.stringify(id)}]`;
    if (seen.has(id)) return fail(path, 'is its own ancestor: the parent links form a cycle');
    seen.add(id);
    if (!isPlainObject(node)) return fail(path, 'must be a node object');
    branch.push([path, node]);
    const parent: unknown = node.parent;
    if (parent === null || parent === undefined) break;
    if (typeof parent !== 'string') return fail(`${path}.parent`, 'must be a node id or null');
    if (!Object.hasOwn(mapping, parent)) {
      return fail(
        `${path}.parent`,
        `names node ${JSON.stringify(parent)}, which is not in mapping`,
      );
    }
    id = parent;
  }
  branch.reverse();

  const turns: Turn[] = [];
  for (const [path, node] of branch) {
    const turn = readTurn(node.message, `${path}.message`, fail);
    if (turn) turns.push(turn);
  }
  if (problems.count > before) return undefined;

  let previous = created ?? turns.find((t) => t.time !== null)?.time ?? updated ?? 0;
  const createdAt = previous;
  const messages: ImportedMessage[] = turns.map((turn) => {
    previous = Math.max(turn.time ?? previous, previous);
    return {
      id: null,
      timestamp: previous,
      role: turn.role,
      content: turn.content,
      metadata: JSON.stringify(turn.metadata),
    };
  });
  const name =
    title === undefined ? '' : Array.from(title.trim()).slice(0, NAME_MAX_LENGTH).join('').trim();
  const model = value.default_model_slug;
  return {
    session: {
      id: chatGptSessionId(key!),
      name: name === '' ? null : name,
      created_at: createdAt,
      last_updated_at: previous,
      llm_model_name:
        typeof model === 'string' && model !== '' && !NUL.test(model) ? model : defaultModelName,
      rag_document_ids: null,
      metadata_tags: { source: 'chatgpt', conversation_id: key! },
      message_count: messages.length,
      archived: value.is_archived === true,
      pinned: false,
    },
    messages,
  };
}

/** The node's message as a turn of the conversation, or undefined when it is skipped (or malformed). */
function readTurn(
  message: unknown,
  path: string,
  fail: (path: string, message: string) => undefined,
): Turn | undefined {
  if (message === null || message === undefined) return undefined;
  if (!isPlainObject(message)) return fail(path, 'must be a message object or null');
  const author = message.author;
  const role = isPlainObject(author) ? author.role : undefined;
  if (typeof role !== 'string') return fail(`${path}.author.role`, 'must be a string');
  const metadata = isPlainObject(message.metadata) ? message.metadata : {};
  if (!ROLES.has(role) || metadata.is_visually_hidden_from_conversation === true) return undefined;
  if (typeof message.recipient === 'string' && message.recipient !== 'all') return undefined;
  const content = message.content;
  if (!isPlainObject(content)) return fail(`${path}.content`, 'must be an object');
  if (typeof content.content_type !== 'string') {
    return fail(`${path}.content.content_type`, 'must be a string');
  }
  if (!TEXT_CONTENT.has(content.content_type)) return undefined;
  if (!Array.isArray(content.parts)) return fail(`${path}.content.parts`, 'must be an array');
  const text = content.parts
    .filter((part): part is string => typeof part === 'string' && part !== '')
    .join('\n');
  if (text.trim() === '') return undefined;
  if (NUL.test(text))
    return fail(`${path}.content.parts`, 'must not contain NUL (U+0000) characters');
  if (!length(text, 1, CONTENT_MAX_LENGTH)) {
    return fail(
      `${path}.content.parts`,
      `hold ${text.length} characters; a message holds at most ${CONTENT_MAX_LENGTH}`,
    );
  }
  const time = seconds(message.create_time);
  if (time === undefined) {
    return fail(`${path}.create_time`, 'must be a time in seconds since the epoch, or null');
  }
  return {
    role: role as MessageRole,
    content: text,
    time,
    metadata: {
      source: 'chatgpt',
      ...(typeof message.id === 'string' ? { chatgpt_message_id: message.id } : {}),
      ...(typeof metadata.model_slug === 'string' ? { model: metadata.model_slug } : {}),
    },
  };
}
