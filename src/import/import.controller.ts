import { Controller, Post, Req, UseInterceptors } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiCreatedResponse,
  ApiExtraModels,
  ApiOperation,
  ApiResponse,
  ApiTags,
  getSchemaPath,
} from '@nestjs/swagger';
import { IMPORT_PATH } from '../app.setup';
import { Owner } from '../auth/owner.decorator';
import { NDJSON_TYPE, ReadsOwnBody } from '../common/http/body-parsing';
import { ApiRequestBody } from '../common/openapi/openapi';
import { ApiProblems, BODY_PROBLEMS, ProblemDto } from '../common/problems/problem.dto';
import { SessionExportDto } from '../export/dto/export.dto';
import { CHATGPT_MODELS, ChatGptConversationDto, ImportResultDto } from './dto/import.dto';
import { Idempotent } from '../idempotency/idempotent.decorator';
import {
  IMPORT_RETRY_AFTER_S,
  ImportIntakeInterceptor,
  type ImportRequest,
  IMPORTS_PER_OWNER,
  IMPORTS_PER_PROCESS,
} from './import-intake';
import { ImportService } from './import.service';

const EXPORT = { $ref: getSchemaPath(SessionExportDto) };
const CONVERSATION = { $ref: getSchemaPath(ChatGptConversationDto) };
const PROBLEM = { 'application/problem+json': { schema: { $ref: getSchemaPath(ProblemDto) } } };

@ApiTags('import')
@ApiBearerAuth()
@ApiProblems(401, 429)
@ApiExtraModels(SessionExportDto, ...CHATGPT_MODELS)
@Controller(IMPORT_PATH)
// On the class, so it runs before the route's idempotency interceptor (see ImportIntakeInterceptor).
@UseInterceptors(ImportIntakeInterceptor)
export class ImportController {
  constructor(private readonly imports: ImportService) {}

  @Post()
  @ApiOperation({
    summary: 'Import exports or ChatGPT conversations',
    description:
      "Our JSON export (one object or an array), our NDJSON export, or a ChatGPT data export's `conversations.json`; up to 50 MiB, one transaction. Importing the same file again creates nothing. Whole conversation trees are restored; a session whose message ids are taken gets new ones (`renumbered_sessions`). A 409 also answers an import that a concurrent request got ahead of (a session or message id it was to use was taken meanwhile): nothing was imported, and a retry succeeds. Accepts `Idempotency-Key`. See `docs/API.md` § Export and import.",
  })
  @ReadsOwnBody()
  @ApiRequestBody({
    required: true,
    description:
      'Up to 50 MiB after any `Content-Encoding` (gzip, deflate, br) is undone; parsed as it arrives. ' +
      `At most ${IMPORTS_PER_OWNER} import per owner and ${IMPORTS_PER_PROCESS} per server process run at once. ` +
      'Our export (`GET /api/v1/sessions/{id}/export`: one object, or an array of them; `GET /api/v1/export`: NDJSON) ' +
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
  @ApiResponse({
    status: 429,
    description: `Too Many Requests: over the rate limit, or another import of this owner is still running (at most ${IMPORTS_PER_OWNER} at a time). Retry-After says when to retry (${IMPORT_RETRY_AFTER_S} s for a running import).`,
    content: PROBLEM,
  })
  @ApiResponse({
    status: 503,
    description: `Service Unavailable: this server process is running ${IMPORTS_PER_PROCESS} imports already. Retry-After: ${IMPORT_RETRY_AFTER_S} s.`,
    content: PROBLEM,
  })
  @Idempotent((result: ImportResultDto) => result)
  async import(@Owner() owner: string, @Req() req: ImportRequest): Promise<ImportResultDto> {
    return this.imports.import(owner, req.importBody ?? { format: 'json', bytes: [] });
  }
}
