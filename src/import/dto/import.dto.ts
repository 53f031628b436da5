import {
  ApiExtraModels,
  ApiHideProperty,
  ApiProperty,
  ApiPropertyOptional,
  getSchemaPath,
} from '@nestjs/swagger';
import { ApiDeclarationOrder, NULL_SCHEMA } from '../../common/openapi/openapi';

export class ImportResultDto {
  /** Sessions created by this import. */
  @ApiProperty({ type: 'integer', minimum: 0 })
  imported: number;

  /** Sessions left out because a session with their id exists already (e.g. imported before). */
  @ApiProperty({ type: 'integer', minimum: 0 })
  skipped: number;

  /** The ids of the file's sessions in file order, imported or skipped: the session's own id (a ChatGPT conversation's is derived from its id), or, where another owner has that id, an id derived from it and the caller, the same on every import of the file. */
  sessions: string[];

  /** `kept`: every imported message has the id the file gave it (trivially so when the file gave none, as in ChatGPT conversations). `renumbered`: the messages of at least one imported session got new ids (see `renumbered_sessions`). Skipped sessions' messages do not count. */
  message_ids: 'kept' | 'renumbered';

  /** The imported sessions (by their id, as in `sessions`) whose messages got new ids: one of the ids the file gave them is a message already, or lies too far above the highest id issued (more than one per message plus 1,000,000). Their order, parent links and `current_message_id` follow the new ids. Empty when every id was kept. */
  renumbered_sessions: string[];
}

class ChatGptAuthorDto {
  /** user, assistant and system are imported; tool is not. */
  @ApiProperty({ example: 'user' })
  role: string;
}

class ChatGptContentDto {
  /** `text` and `multimodal_text` are imported (their string parts); other types are skipped. */
  @ApiProperty({ example: 'text' })
  content_type: string;

  @ApiProperty({ type: 'array', items: {}, example: ['Hello!'] })
  parts?: unknown[];
}

class ChatGptMessageDto {
  id?: string;

  author: ChatGptAuthorDto;

  /** Seconds since the epoch. */
  create_time?: number | null;

  content: ChatGptContentDto;
}

@ApiDeclarationOrder()
@ApiExtraModels(ChatGptMessageDto)
class ChatGptNodeDto {
  id?: string;

  // Keeps the CLI plugin off this property (see NULL_SCHEMA); the decorator below documents it.
  @ApiHideProperty()
  @ApiPropertyOptional({ oneOf: [{ $ref: getSchemaPath(ChatGptMessageDto) }, NULL_SCHEMA] })
  message?: ChatGptMessageDto | null;

  /** The parent node id; null at the root. */
  parent?: string | null;

  children?: string[];
}

/** The parts of a ChatGPT data export conversation (`conversations.json`) the import reads. */
@ApiDeclarationOrder()
export class ChatGptConversationDto {
  /** The conversation id (or `id`): a session imported from it keeps an id derived from it. */
  conversation_id?: string;

  id?: string;

  /** Becomes the session name. */
  title?: string | null;

  /** Seconds since the epoch. */
  create_time?: number | null;

  update_time?: number | null;

  /** Node id → node: the tree of every branch of the conversation, all imported (a skipped node's children attach to its nearest kept ancestor). */
  @ApiProperty({ additionalProperties: { $ref: '#/components/schemas/ChatGptNodeDto' } })
  mapping: Record<string, ChatGptNodeDto>;

  /** The node the user was on: it, or its nearest ancestor that is imported, becomes `current_message_id`. Every node of `mapping` with text is imported, with the tree's shape. */
  current_node: string;

  /** Archives the imported session when true. */
  is_archived?: boolean;

  /** Becomes llm_model_name. */
  default_model_slug?: string | null;
}

export const CHATGPT_MODELS = [ChatGptConversationDto, ChatGptNodeDto];
