import { applyDecorators } from '@nestjs/common';
import {
  ApiExtraModels,
  ApiHideProperty,
  ApiProperty,
  ApiPropertyOptional,
  getSchemaPath,
  PartialType,
  PickType,
} from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import {
  ArrayMaxSize,
  IsArray,
  IsBoolean,
  IsIn,
  IsInt,
  IsOptional,
  IsString,
  Length,
  Max,
  Min,
  ValidateIf,
} from 'class-validator';
import {
  IsMetadataTags,
  MESSAGE_ID_MAX,
  StorableText,
  TAGS_MAX_KEYS,
  TAG_KEY_MAX,
  TAG_VALUE_MAX,
} from '../../common/fields/json-bounds';
import { ApiDeclarationOrder, NULL_SCHEMA } from '../../common/openapi/openapi';
import { LimitQuery, SkipQuery } from '../../common/pagination/pagination';
import { IsFutureTimestamp, isoTimestamp } from '../../common/fields/timestamps';
import { IsForkedFrom } from '../../common/fields/tree-fields';
import { RawJson } from '../../common/problems/validation.pipe';
import { type ForkedFrom, Session } from '../session.entity';

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
  /** A user-friendly name; trimmed, then 1–200 characters. */
  @ApiProperty({ example: 'Trip planning' })
  @IsOptional()
  @trim
  @IsString()
  @StorableText()
  @Length(1, 200, { message: 'name must be 1 to 200 characters long after trimming' })
  readonly name?: string | null;

  /** Ids of documents the session may use for retrieval: at most 100, each 1–200 characters. */
  @ApiProperty({ example: ['doc-1', 'doc-2'] })
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

  @ApiProperty({
    additionalProperties: { type: 'string', maxLength: TAG_VALUE_MAX },
    maxProperties: TAGS_MAX_KEYS,
    description: `Key–value tags: at most ${TAGS_MAX_KEYS} keys of 1–${TAG_KEY_MAX} characters, string values of at most ${TAG_VALUE_MAX} characters.`,
    example: { project: 'travel', lang: 'en' },
  })
  @IsOptional()
  @RawJson()
  @IsMetadataTags()
  readonly metadata_tags?: Record<string, string> | null;

  /** Archived sessions leave the default list. */
  @ApiProperty({ default: false })
  @OptionalFlag('archived')
  readonly archived?: boolean;

  @ApiProperty({ default: false })
  @OptionalFlag('pinned')
  readonly pinned?: boolean;

  /** When the session is deleted: an ISO 8601 date-time in the future (a temporary chat), or null to keep it. It applies to pinned sessions too. */
  @ApiProperty({
    type: 'string',
    format: 'date-time',
    nullable: true,
    example: '2026-02-01T12:00:00.000Z',
  })
  @IsOptional()
  @IsFutureTimestamp()
  readonly expires_at?: string | null;
}

export const LLM_MODEL_NAME_MAX = 200;

const FORK_MESSAGE_RULE = 'message_id must be a message id of this session (an integer)';
const CURRENT_MESSAGE_RULE = 'current_message_id must be a message id of this session (an integer)';

/** `current_message_id` as PATCH and an import take it: a message id (which message, the service checks). */
const IsCurrentMessageId = () =>
  applyDecorators(
    IsInt({ message: CURRENT_MESSAGE_RULE }),
    Min(1, { message: CURRENT_MESSAGE_RULE }),
    Max(MESSAGE_ID_MAX, { message: CURRENT_MESSAGE_RULE }),
  );

/**
 * A session's fields as an import restores them: the API's rules for the fields a client may set
 * (`expires_at` too: in the future, as on POST), the same kind of rule for `llm_model_name`, which
 * the server sets (DEFAULT_MODEL_NAME is held to it as well), and the tree's fields the server
 * keeps, so whatever the service stores passes its own import again.
 */
export class RestoredSessionFieldsDto extends CreateSessionDto {
  @IsOptional()
  @IsString()
  @StorableText()
  @Length(1, LLM_MODEL_NAME_MAX, {
    message: `llm_model_name must be 1 to ${LLM_MODEL_NAME_MAX} characters long`,
  })
  readonly llm_model_name?: string | null;

  @ValidateIf((_, value) => value !== undefined && value !== null)
  @IsCurrentMessageId()
  readonly current_message_id?: number | null;

  @IsOptional()
  @RawJson()
  @IsForkedFrom()
  readonly forked_from?: ForkedFrom | null;
}

/**
 * PATCH: a field left out is unchanged, a field given replaces the old value whole (tags too),
 * `null` clears a nullable field (and is refused for the flags). `{}` is a valid no-op.
 */
export class UpdateSessionDto extends PartialType(CreateSessionDto, {
  skipNullProperties: false,
}) {
  /** Switch branch: a message of this session. The session's current message becomes the newest leaf under it, following the newest child (by timestamp, then id) at every level; the answer names the leaf stored. Not nullable. */
  @ApiProperty({ type: 'integer', required: false, example: 3 })
  @ValidateIf((_, value) => value !== undefined)
  @IsCurrentMessageId()
  readonly current_message_id?: number;
}

/** POST …/fork: which message the fork ends at, and its name. */
export class ForkSessionDto extends PickType(CreateSessionDto, ['name']) {
  /** The last message to copy, a message of this session; omitted: the session's current message. The fork holds the path from the root to it. */
  @ApiProperty({ type: 'integer', required: false, example: 3 })
  @ValidateIf((_, value) => value !== undefined)
  @IsInt({ message: FORK_MESSAGE_RULE })
  @Min(1, { message: FORK_MESSAGE_RULE })
  @Max(MESSAGE_ID_MAX, { message: FORK_MESSAGE_RULE })
  readonly message_id?: number;
}

export const ARCHIVED_FILTERS = ['false', 'true', 'any'] as const;
export type ArchivedFilter = (typeof ARCHIVED_FILTERS)[number];

@ApiDeclarationOrder()
export class ListSessionsQueryDto {
  @SkipQuery()
  readonly skip?: number;

  @LimitQuery(50)
  readonly limit: number = 50;

  /** Opaque cursor from the `next` link of the previous page (keyset paging). Not with `skip`. */
  @IsOptional()
  @IsString({ message: 'cursor must be a cursor string from a previous page' })
  readonly cursor?: string;

  /** `false` hides archived sessions, `true` lists only them, `any` lists both. */
  @ApiPropertyOptional()
  @IsOptional()
  @IsIn(ARCHIVED_FILTERS, { message: `archived must be one of ${ARCHIVED_FILTERS.join(', ')}` })
  readonly archived: ArchivedFilter = 'false';

  /** Only pinned (`true`) or unpinned (`false`) sessions; absent = both. */
  @IsOptional()
  @IsIn(['true', 'false'], { message: 'pinned must be true or false' })
  readonly pinned?: 'true' | 'false';
}

/** The session and message a fork was copied from. */
@ApiDeclarationOrder()
export class ForkedFromDto {
  @ApiProperty({ format: 'uuid' })
  session_id: string;

  /** Null when the source session had no messages. */
  @ApiProperty({ type: 'integer', nullable: true })
  message_id: number | null;
}

@ApiDeclarationOrder()
@ApiExtraModels(ForkedFromDto)
export class SessionDto {
  /** Generated by the server (UUID v4). */
  @ApiProperty({ format: 'uuid' })
  id: string;

  name: string | null;

  @ApiProperty({ format: 'date-time', example: '2026-01-31T12:00:00.000Z' })
  created_at: string;

  /** Moves forward every time a message is added (to that message's timestamp); PATCH and message deletes leave it. */
  @ApiProperty({ format: 'date-time', example: '2026-01-31T12:05:00.000Z' })
  last_updated_at: string;

  @ApiProperty({
    minLength: 1,
    maxLength: LLM_MODEL_NAME_MAX,
    description: `Set from DEFAULT_MODEL_NAME at creation (1–${LLM_MODEL_NAME_MAX} characters; an import holds it to the same rule).`,
  })
  llm_model_name: string | null;

  rag_document_ids: string[] | null;

  metadata_tags: Record<string, string> | null;

  /** Number of messages in the session. */
  @ApiProperty({ type: 'integer', minimum: 0 })
  message_count: number;

  archived: boolean;

  pinned: boolean;

  /** The leaf of the branch the user is on (a message of this session); null exactly when the session has no messages. Each new message becomes it. */
  @ApiProperty({ type: 'integer', nullable: true })
  current_message_id: number | null;

  /** The source of a forked session; null otherwise. */
  @ApiHideProperty()
  @ApiProperty({ oneOf: [{ $ref: getSchemaPath(ForkedFromDto) }, NULL_SCHEMA] })
  forked_from: ForkedFromDto | null;

  /** When the session is deleted (it is gone for every endpoint from then on); null keeps it, unless RETENTION_DAYS deletes it for inactivity (pinned sessions excepted). */
  @ApiProperty({ type: 'string', format: 'date-time', nullable: true })
  expires_at: string | null;
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
    current_message_id: session.current_message_id,
    forked_from: session.forked_from,
    expires_at: session.expires_at === null ? null : isoTimestamp(session.expires_at),
  };
}
