import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { applyDecorators } from '@nestjs/common';
import { IsIn, IsInt, IsOptional, IsString, Length, ValidateIf } from 'class-validator';
import {
  IsBoundedJsonObject,
  type JsonObject,
  METADATA_MAX_BYTES,
  METADATA_MAX_DEPTH,
} from '../../common/fields/json-bounds';
import { ApiDeclarationOrder } from '../../common/openapi/openapi';
import { LimitQuery, SkipQuery, toInteger } from '../../common/pagination/pagination';
import { StorableText } from '../../common/fields/json-bounds';
import { RawJson } from '../../common/problems/validation.pipe';
import { isoTimestamp } from '../../common/fields/timestamps';
import { ChatMessage, MESSAGE_ROLES, type MessageRole } from '../chat-message.entity';

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
}

@ApiDeclarationOrder()
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
}

export function mapChatMessage(message: ChatMessage): ChatMessageDto {
  return {
    id: message.id,
    session_id: message.session_id,
    timestamp: isoTimestamp(message.timestamp),
    role: message.role,
    content: message.content,
    metadata: message.metadata,
  };
}
