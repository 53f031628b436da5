import { Controller, Post, Req } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiCreatedResponse,
  ApiExtraModels,
  ApiOperation,
  ApiTags,
  getSchemaPath,
} from '@nestjs/swagger';
import type { Request } from 'express';
import { IMPORT_PATH } from '../app.setup';
import { Owner } from '../auth/owner.decorator';
import { NDJSON_TYPE } from '../common/body-parsing';
import { ApiRequestBody } from '../common/openapi';
import { ApiProblems, BODY_PROBLEMS } from '../common/problem.dto';
import { SessionExportDto } from '../export/dto/export.dto';
import { CHATGPT_MODELS, ChatGptConversationDto, ImportResultDto } from './dto/import.dto';
import { Idempotent } from '../idempotency/idempotent.decorator';
import { ImportService } from './import.service';

const EXPORT = { $ref: getSchemaPath(SessionExportDto) };
const CONVERSATION = { $ref: getSchemaPath(ChatGptConversationDto) };

@ApiTags('import')
@ApiBearerAuth()
@ApiProblems(401, 429)
@ApiExtraModels(SessionExportDto, ...CHATGPT_MODELS)
@Controller(IMPORT_PATH)
export class ImportController {
  constructor(private readonly imports: ImportService) {}

  @Post()
  @ApiOperation({
    summary: 'Import exports or ChatGPT conversations',
    description:
      "Our JSON export (one object or an array), our NDJSON export, or a ChatGPT data export's `conversations.json`; up to 50 MiB, one transaction. Importing the same file again creates nothing. Accepts `Idempotency-Key`. See `docs/API.md` § Export and import.",
  })
  @ApiRequestBody({
    required: true,
    description:
      'Up to 50 MiB. Our export (`GET /api/v1/sessions/{id}/export`: one object, or an array of them; `GET /api/v1/export`: NDJSON) ' +
      "or a ChatGPT data export's conversations.json. One transaction: a file with any problem imports nothing.",
    content: {
      'application/json': {
        schema: {
          oneOf: [EXPORT, { type: 'array', items: { oneOf: [EXPORT, CONVERSATION] } }],
        },
      },
      [NDJSON_TYPE]: {
        schema: { type: 'string', description: 'One SessionExportDto per line.' },
      },
    },
  })
  @ApiCreatedResponse({
    type: ImportResultDto,
    description:
      'What the file held: new sessions, and sessions skipped because their id exists already (so importing a file again creates nothing).',
  })
  @ApiProblems(...BODY_PROBLEMS)
  @Idempotent((result: ImportResultDto) => result)
  async import(@Owner() owner: string, @Req() req: Request): Promise<ImportResultDto> {
    const body: unknown = req.body;
    return this.imports.import(owner, req.is(NDJSON_TYPE) ? { ndjson: body } : { json: body });
  }
}
