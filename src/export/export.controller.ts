import { Controller, Get, Param, Query, Res } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiExtraModels,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
  getSchemaPath,
} from '@nestjs/swagger';
import type { Response } from 'express';
import { Owner } from '../auth/owner.decorator';
import { ApiProblems } from '../common/problems/problem.dto';
import { ExportAllQueryDto, ExportSessionQueryDto, SessionExportDto } from './dto/export.dto';
import { ExportService } from './export.service';
import { sendExport } from './stream-response';

const CONTENT_DISPOSITION = {
  'Content-Disposition': {
    description:
      'attachment; filename="…" (the session id with .json or .md; chat-sessions.ndjson)',
    required: true,
    schema: { type: 'string' },
  },
};

@ApiTags('export')
@ApiBearerAuth()
@ApiProblems(401, 429)
@ApiExtraModels(SessionExportDto)
@Controller('api/v1')
export class ExportController {
  constructor(private readonly exports: ExportService) {}

  @Get('sessions/:id/export')
  @ApiOperation({
    summary: 'Export one session',
    description:
      'The session and all its messages as a download: JSON (`format=json`, the default; importable with `POST /api/v1/import`) or Markdown (`format=markdown`).',
  })
  @ApiOkResponse({
    description:
      'The session and all its messages (oldest first) as a download: JSON (`format=json`, the default) or Markdown (`format=markdown`).',
    headers: CONTENT_DISPOSITION,
    content: {
      'application/json': { schema: { $ref: getSchemaPath(SessionExportDto) } },
      'text/markdown': {
        schema: { type: 'string' },
        example:
          '# Trip planning\n\n- Session: `6f1c…`\n- Created: 2026-01-31T12:00:00.000Z\n…\n\n## User · 2026-01-31T12:00:05.000Z\n\nWhere should we go in May?\n',
      },
    },
  })
  @ApiProblems(400, 404)
  async exportSession(
    @Owner() owner: string,
    @Param('id') id: string,
    @Query() query: ExportSessionQueryDto,
    @Res() res: Response,
  ): Promise<void> {
    await sendExport(res, await this.exports.session(owner, id, query.format));
  }

  @Get('export')
  @ApiOperation({
    summary: 'Export every session (NDJSON)',
    description:
      'One `{"session", "messages"}` object per line, streamed; `archived=any` includes archived sessions. Importable with `POST /api/v1/import`. See `docs/API.md` § Export and import.',
  })
  @ApiOkResponse({
    description:
      'Every session the `archived` filter selects (by default the unarchived ones; `archived=any` for everything), ' +
      'one `{"session": …, "messages": […]}` object per line (the schema of one line is SessionExportDto), in session id order. ' +
      'Streamed: memory stays flat however large the store. Not a point-in-time snapshot while the store is being written to.',
    headers: CONTENT_DISPOSITION,
    content: {
      'application/x-ndjson': {
        schema: { type: 'string', description: 'NDJSON: one SessionExportDto per line.' },
      },
    },
  })
  @ApiProblems(400)
  async exportAll(
    @Owner() owner: string,
    @Query() query: ExportAllQueryDto,
    @Res() res: Response,
  ): Promise<void> {
    await sendExport(res, this.exports.all(owner, query.archived));
  }
}
