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
 * all of it is imported, with its shape. Kept: user, assistant and system messages with text
 * (`text`, or the text parts of `multimodal_text`), their non-empty string parts joined by
 * newlines. Skipped: empty nodes, tool messages, assistant messages addressed to a tool, other
 * content types (code, browsing, reasoning…) and messages hidden from the conversation. A kept
 * message's parent is its nearest kept ancestor, so a skipped node's children attach above it; the
 * current message is the nearest kept ancestor of `current_node` (the branch the user last saw).
 * Times are the nodes' create times (seconds → ms); a node without one, or with one earlier than
 * its parent's, takes its parent's time, so every message is stamped no earlier than its parent.
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

  // Every node's parent: a node of the mapping, or null for a root.
  const parentOf = new Map<string, string | null>();
  const nodePath = (id: string) => `mapping[${JSON.stringify(id)}]`;
  for (const [id, node] of Object.entries(mapping)) {
    const path = nodePath(id);
    const parent: unknown = isPlainObject(node) ? node.parent : undefined;
    if (!isPlainObject(node)) fail(path, 'must be a node object');
    else if (parent === null || parent === undefined) parentOf.set(id, null);
    else if (typeof parent !== 'string') fail(`${path}.parent`, 'must be a node id or null');
    else if (!Object.hasOwn(mapping, parent)) {
      fail(`${path}.parent`, `names node ${JSON.stringify(parent)}, which is not in mapping`);
    } else parentOf.set(id, parent);
    if (problems.full) break;
    await pacer.pace();
  }
  if (problems.count > before) return undefined;
  // Up from each node (current_node first) to a root, or into a cycle.
  const walked = new Map<string, boolean>();
  for (const start of [current, ...parentOf.keys()]) {
    const walk: string[] = [];
    let id: string | null = start;
    for (; id !== null && !walked.has(id); id = parentOf.get(id)!) {
      walked.set(id, false);
      walk.push(id);
    }
    if (id !== null && walked.get(id) === false) {
      return fail(nodePath(id), 'is its own ancestor: the parent links form a cycle');
    }
    for (const done of walk) walked.set(done, true);
    await pacer.pace();
  }

  // Root first, each node before its children (siblings in mapping order): the kept nodes, each
  // with its nearest kept ancestor as its parent.
  const children = new Map<string | null, string[]>();
  for (const [id, parent] of parentOf) {
    const list = children.get(parent);
    if (list) list.push(id);
    else children.set(parent, [id]);
  }
  const kept: { node: string; turn: Turn; parent: number | null }[] = [];
  const keptAt = new Map<string, number | null>();
  const stack = [...(children.get(null) ?? [])].reverse();
  while (stack.length > 0) {
    const id = stack.pop()!;
    const parent = parentOf.get(id)!;
    const above = parent === null ? null : keptAt.get(parent)!;
    const node = mapping[id] as Record<string, unknown>;
    const turn = readTurn(node.message, `${nodePath(id)}.message`, fail);
    if (turn) kept.push({ node: id, turn, parent: above });
    keptAt.set(id, turn ? kept.length - 1 : above);
    const below = children.get(id) ?? [];
    for (let c = below.length - 1; c >= 0; c--) stack.push(below[c]);
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

  // A message without a create time, or with one earlier than its parent's, takes its parent's.
  const createdAt =
    created ?? kept.find(({ turn }) => turn.time !== null)?.turn.time ?? updated ?? 0;
  const times: number[] = [];
  for (const { turn, parent } of kept) {
    const base = parent === null ? createdAt : times[parent];
    times.push(Math.max(turn.time ?? base, base));
  }
  // In time order (a parent's time is never later than its children's; ties keep the walk's
  // order, parents first): the order of the new ids, so (timestamp, id) order is this one.
  const order = kept.map((_, i) => i).sort((a, b) => times[a] - times[b] || a - b);
  const index = new Map(order.map((k, i) => [k, i]));
  const messages: ImportedMessage[] = order.map((k) => ({
    id: null,
    timestamp: times[k],
    role: kept[k].turn.role,
    content: kept[k].turn.content,
    metadata: kept[k].turn.metadata,
    parent: kept[k].parent === null ? null : index.get(kept[k].parent)!,
    status: 'complete',
    generation: null,
  }));
  const currentKept = keptAt.get(current)!;
  return {
    session: {
      id: chatGptSessionId(key!),
      name: session.dto.name ?? null,
      created_at: createdAt,
      last_updated_at: times.reduce((max, time) => Math.max(max, time), createdAt),
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
    shape: 'tree',
    // The nearest kept ancestor of current_node; with none (a current node above every message),
    // the newest message, as in a session without a tree.
    current: currentKept !== null ? index.get(currentKept)! : messages.length > 0 ? 'newest' : null,
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
