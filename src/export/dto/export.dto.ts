import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional } from 'class-validator';
import { ChatMessageDto } from '../../messages/dto/chat-message.dto';
import { ARCHIVED_FILTERS, type ArchivedFilter, SessionDto } from '../../sessions/dto/session.dto';

export const EXPORT_FORMATS = ['json', 'markdown'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** One session with its whole history: the JSON export, one NDJSON line, and what import reads. */
export class SessionExportDto {
  session: SessionDto;

  /** Oldest first (by timestamp, then id). */
  messages: ChatMessageDto[];
}

export class ExportSessionQueryDto {
  /** `json`: `{session, messages}`; `markdown`: the name as a heading, then each message with its role and timestamp, content verbatim. */
  @ApiPropertyOptional()
  @IsOptional()
  @IsIn(EXPORT_FORMATS, { message: `format must be one of ${EXPORT_FORMATS.join(', ')}` })
  readonly format: ExportFormat = 'json';
}

export class ExportAllQueryDto {
  /** `false` leaves out archived sessions, `true` exports only them, `any` exports everything. */
  @ApiPropertyOptional()
  @IsOptional()
  @IsIn(ARCHIVED_FILTERS, { message: `archived must be one of ${ARCHIVED_FILTERS.join(', ')}` })
  readonly archived: ArchivedFilter = 'false';
}
