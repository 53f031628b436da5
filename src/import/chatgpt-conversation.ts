import { importedTimeProblem, isPlainObject, isStorableText } from '../common/fields/json-bounds';
import type { MessageRole } from '../messages/chat-message.entity';
import { CreateChatMessageDto } from '../messages/dto/chat-message.dto';
import { RestoredSessionFieldsDto } from '../sessions/dto/session.dto';
import type { ImportProblems } from './import-problems';
import type { Pacer } from './pacer';
import {
  checkFields,
  type ImportedMessage,
  type ImportedSession,
  type Location,
  nameBasedUuid,
  toMetadataText,
} from './imported-session';

const ROLES = new Set<string>(['user', 'assistant', 'system']);
const TEXT_CONTENT = new Set(['text', 'multimodal_text']);
const KEY_MAX_LENGTH = 200;
const NAME_MAX_LENGTH = 200;
/** Node and model ids kept in a message's metadata: real ones are short; longer ones are refused. */
const METADATA_ID_MAX_LENGTH = 200;

/**
 * The session id of a ChatGPT conversation: a name-based id (SHA-256 of the conversation's id) in
 * UUID v4 layout. The same conversation always maps to the same session, so importing an export
 * twice finds the session the first import created and skips it, with no mapping table.
 */
export function chatGptSessionId(conversationKey: string): string {
  return nameBasedUuid(`chatgpt:${conversationKey}`);
}

interface Turn {
  role: MessageRole;
  content: string;
  /** Epoch ms, or null when the node has no create time. */
  time: number | null;
  /** Serialized, as stored. */
  metadata: string | null;
}

type Fail = (path: string, message: string) => undefined;

/**
 * A time in seconds since the epoch as ms: null when absent, undefined (after reporting it) when it
 * is not a number or outside the times an import takes.
 */
function seconds(value: unknown, path: string, fail: Fail): number | null | undefined {
  if (value === null || value === undefined) return null;
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    return fail(path, 'must be a time in seconds since the epoch, or null');
  }
  const ms = Math.round(value * 1000);
  const problem = importedTimeProblem(ms);
  return problem ? fail(path, `(${value} seconds) ${problem}`) : ms;
}

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
export async function readChatGptConversation(
  value: Record<string, unknown>,
  at: Location,
  problems: ImportProblems,
  defaultModelName: string,
  pacer: Pacer,
): Promise<ImportedSession | undefined> {
  const before = problems.count;
  const rawKey = value.conversation_id ?? value.id;
  const key = typeof rawKey === 'string' ? rawKey : undefined;
  const title = typeof value.title === 'string' ? value.title : undefined;
  const subject = `conversation ${title ? `'${title.slice(0, 60)}' ` : ''}(id ${key?.slice(0, KEY_MAX_LENGTH) ?? 'missing'})`;
  const fail: Fail = (path, message) => {
    problems.add(at.field(path), `${subject}: ${path} ${message}`);
    return undefined;
  };

  if (
    key === undefined ||
    key.length === 0 ||
    key.length > KEY_MAX_LENGTH ||
    !isStorableText(key)
  ) {
    fail(
      value.conversation_id === undefined ? 'id' : 'conversation_id',
      `must be the conversation's id (1 to ${KEY_MAX_LENGTH} characters of valid Unicode text without NUL)`,
    );
  }
  if (value.title !== undefined && value.title !== null && typeof value.title !== 'string') {
    fail('title', 'must be a string or null');
  }
  const created = seconds(value.create_time, 'create_time', fail);
  const updated = seconds(value.update_time, 'update_time', fail);
  const model = value.default_model_slug;
  if (model !== undefined && model !== null && typeof model !== 'string') {
    fail('default_model_slug', 'must be a string or null');
  }

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
    await pacer.pace();
  }
  branch.reverse();

  const turns: Turn[] = [];
  for (const [path, node] of branch) {
    const turn = readTurn(node.message, `${path}.message`, fail);
    if (turn) turns.push(turn);
    if (problems.full) break;
    await pacer.pace();
  }

  // A title longer than a name may be is shortened; anything else a name may not hold is refused.
  const name =
    title === undefined ? '' : Array.from(title.trim()).slice(0, NAME_MAX_LENGTH).join('').trim();
  const session = checkFields(RestoredSessionFieldsDto, {
    name: name === '' ? null : name,
    llm_model_name: typeof model === 'string' && model !== '' ? model : defaultModelName,
    metadata_tags: { source: 'chatgpt', conversation_id: key ?? '' },
  });
  for (const problem of session.problems) {
    const field = { name: 'title', llm_model_name: 'default_model_slug' }[problem.property];
    // The conversation id's own check above names the id's problems.
    if (field) fail(field, `cannot be the session's ${problem.property}: ${problem.message}`);
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
      metadata: turn.metadata,
    };
  });
  return {
    session: {
      id: chatGptSessionId(key!),
      name: session.dto.name ?? null,
      created_at: createdAt,
      last_updated_at: previous,
      llm_model_name: session.dto.llm_model_name ?? null,
      rag_document_ids: null,
      metadata_tags: session.dto.metadata_tags ?? null,
      message_count: messages.length,
      archived: value.is_archived === true,
      pinned: false,
      current_message_id: null,
      forked_from: null,
      expires_at: null,
    },
    messages,
  };
}

/** The node's message as a turn of the conversation, or undefined when it is skipped (or malformed). */
function readTurn(message: unknown, path: string, fail: Fail): Turn | undefined {
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
  const time = seconds(message.create_time, `${path}.create_time`, fail);
  const ids: [string, unknown][] = [
    [`${path}.id`, message.id],
    [`${path}.metadata.model_slug`, metadata.model_slug],
  ];
  for (const [idPath, id] of ids) {
    if (typeof id === 'string' && id.length > METADATA_ID_MAX_LENGTH) {
      fail(
        idPath,
        `must be at most ${METADATA_ID_MAX_LENGTH} characters (it is kept in the message's metadata)`,
      );
    }
  }
  // The message as the API would take it: the same rules for content, role and metadata.
  const checked = checkFields(CreateChatMessageDto, {
    content: text,
    role,
    metadata: {
      source: 'chatgpt',
      ...(typeof message.id === 'string' ? { chatgpt_message_id: message.id } : {}),
      ...(typeof metadata.model_slug === 'string' ? { model: metadata.model_slug } : {}),
    },
  });
  for (const problem of checked.problems) {
    fail(
      problem.property === 'content' ? `${path}.content.parts` : path,
      `break the rule for messages: ${problem.message}`,
    );
  }
  if (time === undefined || checked.problems.length > 0) return undefined;
  return {
    role: role as MessageRole,
    content: text,
    time,
    metadata: toMetadataText(checked.dto.metadata),
  };
}
