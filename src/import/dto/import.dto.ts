import { ApiExtraModels, ApiProperty, ApiPropertyOptional, getSchemaPath } from '@nestjs/swagger';
import { NULL_SCHEMA } from '../../common/openapi/openapi';

export class ImportResultDto {
  @ApiProperty({ type: 'integer', minimum: 0, description: 'Sessions created by this import.' })
  imported: number;

  @ApiProperty({
    type: 'integer',
    minimum: 0,
    description:
      'Sessions left out because a session with their id exists already (e.g. imported before).',
  })
  skipped: number;

  @ApiProperty({
    type: [String],
    description:
      "The ids of the file's sessions in file order, imported or skipped: the session's own id (a ChatGPT conversation's is derived from its id), or, where another owner has that id, an id derived from it and the caller, the same on every import of the file.",
  })
  sessions: string[];

  @ApiProperty({
    enum: ['kept', 'renumbered'],
    description:
      "`kept`: every imported message has the id the file gave it (trivially so when the file gave none, as in ChatGPT conversations). `renumbered`: the file's message ids were not all new to this database, or lay too far above its highest id (more than one per message plus 1,000,000), so every imported message got a new id; each session's order is unchanged. Skipped sessions' messages do not count.",
  })
  message_ids: 'kept' | 'renumbered';
}

class ChatGptAuthorDto {
  @ApiProperty({
    example: 'user',
    description: 'user, assistant and system are imported; tool is not.',
  })
  role: string;
}

class ChatGptContentDto {
  @ApiProperty({
    example: 'text',
    description:
      '`text` and `multimodal_text` are imported (their string parts); other types are skipped.',
  })
  content_type: string;

  @ApiPropertyOptional({ type: 'array', items: {}, example: ['Hello!'] })
  parts?: unknown[];
}

class ChatGptMessageDto {
  @ApiPropertyOptional()
  id?: string;

  @ApiProperty({ type: ChatGptAuthorDto })
  author: ChatGptAuthorDto;

  @ApiPropertyOptional({ type: Number, nullable: true, description: 'Seconds since the epoch.' })
  create_time?: number | null;

  @ApiProperty({ type: ChatGptContentDto })
  content: ChatGptContentDto;
}

@ApiExtraModels(ChatGptMessageDto)
class ChatGptNodeDto {
  @ApiPropertyOptional()
  id?: string;

  @ApiPropertyOptional({ oneOf: [{ $ref: getSchemaPath(ChatGptMessageDto) }, NULL_SCHEMA] })
  message?: ChatGptMessageDto | null;

  @ApiPropertyOptional({
    type: String,
    nullable: true,
    description: 'The parent node id; null at the root.',
  })
  parent?: string | null;

  @ApiPropertyOptional({ type: [String] })
  children?: string[];
}

/** The parts of a ChatGPT data export conversation (`conversations.json`) the import reads. */
export class ChatGptConversationDto {
  @ApiPropertyOptional({
    description:
      'The conversation id (or `id`): a session imported from it keeps an id derived from it.',
  })
  conversation_id?: string;

  @ApiPropertyOptional()
  id?: string;

  @ApiPropertyOptional({ type: String, nullable: true, description: 'Becomes the session name.' })
  title?: string | null;

  @ApiPropertyOptional({ type: Number, nullable: true, description: 'Seconds since the epoch.' })
  create_time?: number | null;

  @ApiPropertyOptional({ type: Number, nullable: true })
  update_time?: number | null;

  @ApiProperty({
    type: 'object',
    additionalProperties: { $ref: '#/components/schemas/ChatGptNodeDto' },
    description: 'Node id → node: the tree of every branch of the conversation.',
  })
  mapping: Record<string, ChatGptNodeDto>;

  @ApiProperty({ description: 'The last node of the branch to import (it and its ancestors).' })
  current_node: string;

  @ApiPropertyOptional({ description: 'Archives the imported session when true.' })
  is_archived?: boolean;

  @ApiPropertyOptional({ type: String, nullable: true, description: 'Becomes llm_model_name.' })
  default_model_slug?: string | null;
}

export const CHATGPT_MODELS = [ChatGptConversationDto, ChatGptNodeDto];
