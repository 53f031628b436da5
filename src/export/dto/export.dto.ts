import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsIn, IsOptional } from 'class-validator';
import { ChatMessageDto } from '../../messages/dto/chat-message.dto';
import { ARCHIVED_FILTERS, type ArchivedFilter, SessionDto } from '../../sessions/dto/session.dto';

export const EXPORT_FORMATS = ['json', 'markdown'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** One session with its whole history: the JSON export, one NDJSON line, and what import reads. */
export class SessionExportDto {
  @ApiProperty({ type: SessionDto })
  session: SessionDto;

  @ApiProperty({ type: [ChatMessageDto], description: 'Oldest first (by timestamp, then id).' })
  messages: ChatMessageDto[];
}

export class ExportSessionQueryDto {
  @ApiPropertyOptional({
    enum: EXPORT_FORMATS,
    default: 'json',
    description:
      '`json`: `{session, messages}`; `markdown`: the name as a heading, then each message with its role and timestamp, content verbatim.',
  })
  @IsOptional()
  @IsIn(EXPORT_FORMATS, { message: `format must be one of ${EXPORT_FORMATS.join(', ')}` })
  readonly format: ExportFormat = 'json';
}

export class ExportAllQueryDto {
  @ApiPropertyOptional({
    enum: ARCHIVED_FILTERS,
    default: 'false',
    description:
      '`false` leaves out archived sessions, `true` exports only them, `any` exports everything.',
  })
  @IsOptional()
  @IsIn(ARCHIVED_FILTERS, { message: `archived must be one of ${ARCHIVED_FILTERS.join(', ')}` })
  readonly archived: ArchivedFilter = 'false';
}
