import {
  ApiExtraModels,
  ApiHideProperty,
  ApiProperty,
  ApiPropertyOptional,
  getSchemaPath,
} from '@nestjs/swagger';
import { applyDecorators } from '@nestjs/common';
import {
  IsIn,
  IsInt,
  IsOptional,
  IsString,
  Length,
  Matches,
  Max,
  Min,
  ValidateIf,
} from 'class-validator';
import {
  IsBoundedJsonObject,
  type JsonObject,
  MESSAGE_ID_MAX,
  METADATA_MAX_BYTES,
  METADATA_MAX_DEPTH,
} from '../../common/fields/json-bounds';
import { ApiDeclarationOrder, NULL_SCHEMA } from '../../common/openapi/openapi';
import { LimitQuery, SkipQuery, toInteger } from '../../common/pagination/pagination';
import { StorableText } from '../../common/fields/json-bounds';
import { RawJson } from '../../common/problems/validation.pipe';
import { isoTimestamp } from '../../common/fields/timestamps';
import { IsGeneration } from '../../common/fields/tree-fields';
import {
  ChatMessage,
  type Generation,
  MESSAGE_ROLES,
  MESSAGE_STATUSES,
  type MessageRole,
  type MessageStatus,
} from '../chat-message.entity';

export const CONTENT_MAX_LENGTH = 100_000;

export class CreateChatMessageDto {
  /** The message text, stored verbatim: 1–100,000 characters. */
  @ApiProperty({ example: 'What is the capital of France?' })
  @IsString()
  @StorableText()
  @Length(1, CONTENT_MAX_LENGTH, {
    message: `content must be 1 to ${CONTENT_MAX_LENGTH} characters long`,
  })
  readonly content: string;

  @ApiProperty({ default: 'user' })
  @ValidateIf((_, value) => value !== undefined)
  @IsIn(MESSAGE_ROLES, { message: `role must be one of ${MESSAGE_ROLES.join(', ')}` })
  readonly role?: MessageRole;

  @ApiProperty({
    type: 'object',
    additionalProperties: true,
    description: `Free-form JSON object: at most ${METADATA_MAX_BYTES} bytes serialized, ${METADATA_MAX_DEPTH} levels deep.`,
    example: { source: 'web', tokens: 12 },
  })
  @IsOptional()
  @RawJson()
  @IsBoundedJsonObject({ maxBytes: METADATA_MAX_BYTES, maxDepth: METADATA_MAX_DEPTH })
  readonly metadata?: JsonObject | null;

  /** The message this one follows, a message of this session. Omitted: the session's `current_message_id`; `null`: a new root. */
  @ApiProperty({ type: 'integer', nullable: true, required: false, example: 2 })
  @ValidateIf((_, value) => value !== undefined && value !== null)
  @IsInt({ message: 'parent_id must be a message id (an integer) or null' })
  @Min(1, { message: 'parent_id must be a message id (an integer) or null' })
  @Max(MESSAGE_ID_MAX, { message: 'parent_id must be a message id (an integer) or null' })
  readonly parent_id?: number | null;
}

/** A message's fields as an import restores them: POST's rules, and the fields generated replies carry. */
export class RestoredMessageFieldsDto extends CreateChatMessageDto {
  @ValidateIf((_, value) => value !== undefined)
  @IsIn(MESSAGE_STATUSES, { message: `status must be one of ${MESSAGE_STATUSES.join(', ')}` })
  readonly status?: MessageStatus;

  @IsOptional()
  @RawJson()
  @IsGeneration()
  readonly generation?: Generation | null;
}

const messageCursor = (param: string) =>
  applyDecorators(
    ApiPropertyOptional({ type: 'integer' }),
    toInteger,
    IsOptional(),
    IsInt({ message: `${param} must be a message id` }),
  );

export class ListMessagesQueryDto {
  @SkipQuery()
  readonly skip?: number;

  @LimitQuery(1000)
  readonly limit: number = 1000;

  /** Keyset paging: only messages strictly after this message, in the list order. Not with `skip`. */
  @messageCursor('after')
  readonly after?: number;

  /** Keyset paging: the `limit` messages nearest before this message, still in the list order. Not with `skip`. */
  @messageCursor('before')
  readonly before?: number;

  /** `asc`: oldest first; `desc`: newest first. */
  @ApiPropertyOptional()
  @IsOptional()
  @IsIn(['asc', 'desc'], { message: 'order must be asc or desc' })
  readonly order: 'asc' | 'desc' = 'asc';

  /** Only the path from the root to a message, root first: `current` (the session's current message) or a message id of this session. Each message then also carries `sibling_ids`; `X-Total-Count` is the path's length. */
  @ApiPropertyOptional({ example: 'current' })
  @IsOptional()
  @Matches(/^(current|[1-9]\d{0,14})$/, {
    message: 'branch must be current or a message id of this session',
  })
  readonly branch?: string;
}

@ApiDeclarationOrder()
export class GenerationUsageDto {
  @ApiProperty({ type: 'integer', minimum: 0 })
  prompt_tokens: number;

  @ApiProperty({ type: 'integer', minimum: 0 })
  completion_tokens: number;
}

/** How a generated reply came about. */
@ApiDeclarationOrder()
@ApiExtraModels(GenerationUsageDto)
export class GenerationDto {
  /** The model that generated the reply. */
  model: string;

  /** The model's reason for stopping, when it gave one. */
  finish_reason: string | null;

  // Keeps the CLI plugin off this property (see NULL_SCHEMA); the decorator below documents it.
  @ApiHideProperty()
  @ApiProperty({ oneOf: [{ $ref: getSchemaPath(GenerationUsageDto) }, NULL_SCHEMA] })
  usage: GenerationUsageDto | null;

  /** Why the generation failed: one line. */
  error: string | null;
}

@ApiDeclarationOrder()
@ApiExtraModels(GenerationDto)
export class ChatMessageDto {
  /** Unique across all sessions; never reused. */
  @ApiProperty({ type: 'integer' })
  id: number;

  @ApiProperty({ format: 'uuid' })
  session_id: string;

  @ApiProperty({ format: 'date-time', example: '2026-01-31T12:05:00.000Z' })
  timestamp: string;

  role: MessageRole;

  content: string;

  @ApiProperty({ additionalProperties: true })
  metadata: object | null;

  /** The message this one follows, in the same session; null for a root. A session's messages form a tree (several roots allowed). */
  @ApiProperty({ type: 'integer', nullable: true })
  parent_id: number | null;

  /** `complete` for every posted message; generated replies are `in_progress`, then `complete`, `cancelled` or `failed`. */
  @ApiProperty({ enum: MESSAGE_STATUSES })
  status: MessageStatus;

  /** Null for posted messages; how a generated reply came about. */
  @ApiHideProperty()
  @ApiProperty({ oneOf: [{ $ref: getSchemaPath(GenerationDto) }, NULL_SCHEMA] })
  generation: GenerationDto | null;

  /** Only in a branch listing (`?branch=`): the ids of the messages with the same parent, this one included (for a root: the session's roots), oldest first. */
  @ApiPropertyOptional({ type: 'integer', isArray: true })
  sibling_ids?: number[];
}

export function mapChatMessage(message: ChatMessage): ChatMessageDto {
  return {
    id: message.id,
    session_id: message.session_id,
    timestamp: isoTimestamp(message.timestamp),
    role: message.role,
    content: message.content,
    metadata: message.metadata,
    parent_id: message.parent_id,
    status: message.status,
    generation: message.generation,
  };
}

/** A message of a branch listing: the message and its siblings (see ChatMessageDto.sibling_ids). */
export interface BranchMessage {
  message: ChatMessage;
  siblingIds: number[];
}

export function mapBranchMessage({ message, siblingIds }: BranchMessage): ChatMessageDto {
  return { ...mapChatMessage(message), sibling_ids: siblingIds };
}
