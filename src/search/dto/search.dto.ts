import {
  ApiExtraModels,
  ApiHideProperty,
  ApiProperty,
  ApiPropertyOptional,
  getSchemaPath,
} from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { IsIn, IsInt, IsOptional, IsString, Length, Max, Min } from 'class-validator';
import { ApiDeclarationOrder, NULL_SCHEMA } from '../../common/openapi/openapi';
import { toInteger } from '../../common/pagination/pagination';
import { ChatMessage } from '../../messages/chat-message.entity';
import { ChatMessageDto, mapChatMessage } from '../../messages/dto/chat-message.dto';
import {
  ARCHIVED_FILTERS,
  type ArchivedFilter,
  mapSession,
  SessionDto,
} from '../../sessions/dto/session.dto';
import { Session } from '../../sessions/session.entity';

export const QUERY_MAX_LENGTH = 500;
export const SEARCH_MAX_LIMIT = 100;

const limitMessage = `limit must be an integer from 1 to ${SEARCH_MAX_LIMIT}`;

export class SearchQueryDto {
  /** Plain words, all of which must match (case- and accent-insensitive; a word also matches words it begins). `"Quoted phrases"` match as phrases of whole words. Every other character is text, never query syntax. */
  @ApiProperty({ example: 'lisbon "late may"' })
  @Transform(({ value }: { value: unknown }) => (typeof value === 'string' ? value.trim() : value))
  @IsString({ message: 'q must be a search text' })
  @Length(1, QUERY_MAX_LENGTH, {
    message: `q must be 1 to ${QUERY_MAX_LENGTH} characters long (after trimming)`,
  })
  readonly q: string;

  /** Maximum number of hits to return. */
  @ApiPropertyOptional({ type: 'integer' })
  @toInteger
  @IsInt({ message: limitMessage })
  @Min(1, { message: limitMessage })
  @Max(SEARCH_MAX_LIMIT, { message: limitMessage })
  readonly limit: number = 20;

  /** Only hits in this session. An unknown session is a 404. Naming a session searches it whatever its archived state, unless `archived` is given. */
  @IsOptional()
  @IsString({ message: 'session_id must be a session id' })
  readonly session_id?: string;

  /** `false` (the default without `session_id`) leaves out archived sessions, `true` searches only them, `any` both. */
  @IsOptional()
  @IsIn(ARCHIVED_FILTERS, { message: `archived must be one of ${ARCHIVED_FILTERS.join(', ')}` })
  readonly archived?: ArchivedFilter;
}

@ApiDeclarationOrder()
@ApiExtraModels(ChatMessageDto)
export class SearchHitDto {
  /** The session the hit is in (or whose name matched). */
  session: SessionDto;

  // Keeps the CLI plugin off this property (see NULL_SCHEMA); the decorator below documents it.
  @ApiHideProperty()
  @ApiProperty({
    description: "The matching message; null when the hit is the session's name.",
    oneOf: [{ $ref: getSchemaPath(ChatMessageDto) }, NULL_SCHEMA],
  })
  message: ChatMessageDto | null;

  /** The matching text (message content or session name) cut to about 200 characters around the first match, each match wrapped in `[` `]`, `…` where text was cut. */
  @ApiProperty({ example: '…we could spend a week in [Lisbon] in [late May], when the…' })
  snippet: string;
}

export function mapSearchHit(hit: {
  session: Session;
  message: ChatMessage | null;
  snippet: string;
}): SearchHitDto {
  return {
    session: mapSession(hit.session),
    message: hit.message && mapChatMessage(hit.message),
    snippet: hit.snippet,
  };
}
