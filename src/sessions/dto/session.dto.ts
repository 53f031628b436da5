import { applyDecorators } from '@nestjs/common';
import { ApiProperty, ApiPropertyOptional, PartialType } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import {
  ArrayMaxSize,
  IsArray,
  IsBoolean,
  IsIn,
  IsOptional,
  IsString,
  Length,
  ValidateIf,
} from 'class-validator';
import {
  IsMetadataTags,
  StorableText,
  TAGS_MAX_KEYS,
  TAG_KEY_MAX,
  TAG_VALUE_MAX,
} from '../../common/fields/json-bounds';
import { LimitQuery, SkipQuery } from '../../common/pagination/pagination';
import { isoTimestamp } from '../../common/fields/timestamps';
import { RawJson } from '../../common/problems/validation.pipe';
import { Session } from '../session.entity';

const trim = Transform(({ value }: { value: unknown }) =>
  typeof value === 'string' ? value.trim() : value,
);

/** An optional flag: present means "set to this"; `null` is refused, as a flag is never unknown. */
function OptionalFlag(name: string): PropertyDecorator {
  return applyDecorators(
    ValidateIf((_: object, value: unknown) => value !== undefined),
    IsBoolean({ message: `${name} must be true or false` }),
  );
}

export class CreateSessionDto {
  @ApiPropertyOptional({
    type: String,
    nullable: true,
    minLength: 1,
    maxLength: 200,
    description: 'A user-friendly name; trimmed, then 1–200 characters.',
    example: 'Trip planning',
  })
  @IsOptional()
  @trim
  @IsString()
  @StorableText()
  @Length(1, 200, { message: 'name must be 1 to 200 characters long after trimming' })
  readonly name?: string | null;

  @ApiPropertyOptional({
    type: [String],
    nullable: true,
    maxItems: 100,
    items: { type: 'string', minLength: 1, maxLength: 200 },
    description:
      'Ids of documents the session may use for retrieval: at most 100, each 1–200 characters.',
    example: ['doc-1', 'doc-2'],
  })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(100)
  @IsString({ each: true })
  @StorableText({ each: true })
  @Length(1, 200, {
    each: true,
    message: 'each of rag_document_ids must be 1 to 200 characters long',
  })
  readonly rag_document_ids?: string[] | null;

  @ApiPropertyOptional({
    type: 'object',
    additionalProperties: { type: 'string', maxLength: TAG_VALUE_MAX },
    maxProperties: TAGS_MAX_KEYS,
    nullable: true,
    description: `Key–value tags: at most ${TAGS_MAX_KEYS} keys of 1–${TAG_KEY_MAX} characters, string values of at most ${TAG_VALUE_MAX} characters.`,
    example: { project: 'travel', lang: 'en' },
  })
  @IsOptional()
  @RawJson()
  @IsMetadataTags()
  readonly metadata_tags?: Record<string, string> | null;

  @ApiPropertyOptional({
    type: Boolean,
    default: false,
    description: 'Archived sessions leave the default list.',
  })
  @OptionalFlag('archived')
  readonly archived?: boolean;

  @ApiPropertyOptional({ type: Boolean, default: false })
  @OptionalFlag('pinned')
  readonly pinned?: boolean;
}

export const LLM_MODEL_NAME_MAX = 200;

/**
 * A session's fields as an import restores them: the API's rules for the fields a client may set,
 * and the same kind of rule for `llm_model_name`, which the server sets (DEFAULT_MODEL_NAME is held
 * to it as well), so whatever the service stores passes its own import again.
 */
export class RestoredSessionFieldsDto extends CreateSessionDto {
  @IsOptional()
  @IsString()
  @StorableText()
  @Length(1, LLM_MODEL_NAME_MAX, {
    message: `llm_model_name must be 1 to ${LLM_MODEL_NAME_MAX} characters long`,
  })
  readonly llm_model_name?: string | null;
}

/**
 * PATCH: a field left out is unchanged, a field given replaces the old value whole (tags too),
 * `null` clears a nullable field (and is refused for the flags). `{}` is a valid no-op.
 */
export class UpdateSessionDto extends PartialType(CreateSessionDto, {
  skipNullProperties: false,
}) {}

export const ARCHIVED_FILTERS = ['false', 'true', 'any'] as const;
export type ArchivedFilter = (typeof ARCHIVED_FILTERS)[number];

export class ListSessionsQueryDto {
  @SkipQuery()
  readonly skip?: number;

  @LimitQuery(50)
  readonly limit: number = 50;

  @ApiPropertyOptional({
    description:
      'Opaque cursor from the `next` link of the previous page (keyset paging). Not with `skip`.',
  })
  @IsOptional()
  @IsString({ message: 'cursor must be a cursor string from a previous page' })
  readonly cursor?: string;

  @ApiPropertyOptional({
    enum: ARCHIVED_FILTERS,
    default: 'false',
    description: '`false` hides archived sessions, `true` lists only them, `any` lists both.',
  })
  @IsOptional()
  @IsIn(ARCHIVED_FILTERS, { message: `archived must be one of ${ARCHIVED_FILTERS.join(', ')}` })
  readonly archived: ArchivedFilter = 'false';

  @ApiPropertyOptional({
    enum: ['true', 'false'],
    description: 'Only pinned (`true`) or unpinned (`false`) sessions; absent = both.',
  })
  @IsOptional()
  @IsIn(['true', 'false'], { message: 'pinned must be true or false' })
  readonly pinned?: 'true' | 'false';
}

export class SessionDto {
  @ApiProperty({ format: 'uuid', description: 'Generated by the server (UUID v4).' })
  id: string;

  @ApiProperty({ type: String, nullable: true })
  name: string | null;

  @ApiProperty({ format: 'date-time', example: '2026-01-31T12:00:00.000Z' })
  created_at: string;

  @ApiProperty({
    format: 'date-time',
    example: '2026-01-31T12:05:00.000Z',
    description:
      "Moves forward every time a message is added (to that message's timestamp); PATCH and message deletes leave it.",
  })
  last_updated_at: string;

  @ApiProperty({
    type: String,
    nullable: true,
    minLength: 1,
    maxLength: LLM_MODEL_NAME_MAX,
    description: `Set from DEFAULT_MODEL_NAME at creation (1–${LLM_MODEL_NAME_MAX} characters; an import holds it to the same rule).`,
  })
  llm_model_name: string | null;

  @ApiProperty({ type: [String], nullable: true })
  rag_document_ids: string[] | null;

  @ApiProperty({ type: 'object', additionalProperties: { type: 'string' }, nullable: true })
  metadata_tags: Record<string, string> | null;

  @ApiProperty({ type: 'integer', minimum: 0, description: 'Number of messages in the session.' })
  message_count: number;

  @ApiProperty()
  archived: boolean;

  @ApiProperty()
  pinned: boolean;
}

export function mapSession(session: Session): SessionDto {
  return {
    id: session.id,
    name: session.name,
    created_at: isoTimestamp(session.created_at),
    last_updated_at: isoTimestamp(session.last_updated_at),
    llm_model_name: session.llm_model_name,
    rag_document_ids: session.rag_document_ids,
    metadata_tags: session.metadata_tags,
    message_count: session.message_count,
    archived: session.archived,
    pinned: session.pinned,
  };
}
