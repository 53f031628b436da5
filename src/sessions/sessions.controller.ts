import {
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  Param,
  Patch,
  Post,
  Query,
  Res,
} from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiBody,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
} from '@nestjs/swagger';
import type { Response } from 'express';
import { Owner } from '../auth/owner.decorator';
import { listHeaders, setPageHeaders } from '../common/pagination/pagination';
import { ApiProblems, BODY_PROBLEMS } from '../common/problems/problem.dto';
import {
  CreateSessionDto,
  ForkSessionDto,
  ListSessionsQueryDto,
  mapSession,
  SessionDto,
  UpdateSessionDto,
} from './dto/session.dto';
import { Idempotent } from '../idempotency/idempotent.decorator';
import { SessionsService } from './sessions.service';

const PATH = '/api/v1/sessions';

@ApiTags('sessions')
@ApiBearerAuth()
@ApiProblems(401, 429)
@Controller(PATH)
export class SessionsController {
  constructor(private readonly sessions: SessionsService) {}

  @Post()
  @ApiOperation({
    summary: 'Create a session',
    description:
      'Every field is optional (`{}` is a valid body); `llm_model_name` comes from DEFAULT_MODEL_NAME; `expires_at` makes a temporary chat. Accepts `Idempotency-Key`. See `docs/API.md` § Session and § Retention.',
  })
  @ApiBody({ type: CreateSessionDto, required: false })
  @ApiCreatedResponse({ type: SessionDto, description: 'The new session.' })
  @ApiProblems(...BODY_PROBLEMS)
  @Idempotent(mapSession)
  async create(@Owner() owner: string, @Body() dto: CreateSessionDto): Promise<SessionDto> {
    return mapSession(await this.sessions.create(owner, dto));
  }

  @Post(':id/fork')
  @ApiOperation({
    summary: 'Fork a session at a message',
    description:
      "A new session of the same owner holding copies of the path from the root to `message_id` (default: the current message): roles, contents, metadata, status and generation kept, new ids, re-stamped now so the fork is the most recently active session. `name` defaults to the source's; `llm_model_name`, `rag_document_ids` and `metadata_tags` are copied; not archived, not pinned, no `expires_at`; `forked_from` names the source. Accepts `Idempotency-Key`. See `docs/API.md` § Branches.",
  })
  @ApiBody({ type: ForkSessionDto, required: false })
  @ApiCreatedResponse({ type: SessionDto, description: 'The new session.' })
  @ApiProblems(404, 409, ...BODY_PROBLEMS)
  @Idempotent(mapSession)
  async fork(
    @Owner() owner: string,
    @Param('id') id: string,
    @Body() dto: ForkSessionDto,
  ): Promise<SessionDto> {
    return mapSession(await this.sessions.fork(owner, id, dto));
  }

  @Get()
  @ApiOperation({
    summary: 'List sessions',
    description:
      'Most recently active first. Archived sessions are hidden unless `archived=true` or `any`; `pinned` filters. Page by `skip`/`limit` or follow the `Link: rel="next"` cursor. `X-Total-Count` counts what the filters match. See `docs/API.md` § Cursor pagination.',
  })
  @ApiOkResponse({
    type: [SessionDto],
    headers: listHeaders('Number of sessions the filters match, ignoring paging.'),
    description:
      'Most recently active first (ties: newest created_at, then id). Page by `skip` or by `cursor`. A session that gets new activity moves to the front: a cursor walk already past it does not see it again.',
  })
  @ApiProblems(400)
  async list(
    @Owner() owner: string,
    @Query() query: ListSessionsQueryDto,
    @Res({ passthrough: true }) res: Response,
  ): Promise<SessionDto[]> {
    const page = await this.sessions.list(owner, query);
    setPageHeaders(res, PATH, page);
    return page.items.map(mapSession);
  }

  @Get(':id')
  @ApiOperation({
    summary: 'Get a session',
    description:
      "One session with its `message_count`. Another owner's session answers 404, like an unknown one, and so does an expired one (its `expires_at` reached, or idle past RETENTION_DAYS unless pinned), on every endpoint.",
  })
  @ApiOkResponse({ type: SessionDto, description: 'The session.' })
  @ApiProblems(404)
  async get(@Owner() owner: string, @Param('id') id: string): Promise<SessionDto> {
    return mapSession(await this.sessions.get(owner, id));
  }

  @Patch(':id')
  @ApiOperation({
    summary: 'Rename, tag, archive or pin a session',
    description:
      'Any of `name`, `rag_document_ids`, `metadata_tags`, `archived`, `pinned`, `expires_at` (a future time, or `null` to keep the session), `current_message_id`: a field left out is unchanged, a field given replaces the old value whole, `null` clears a nullable field; `{}` is a no-op. `last_updated_at` does not move.',
  })
  @ApiBody({ type: UpdateSessionDto, required: false })
  @ApiOkResponse({
    type: SessionDto,
    description:
      'Fields left out are unchanged; a field given replaces the old value whole; null clears a nullable field. Does not move last_updated_at.',
  })
  @ApiProblems(404, ...BODY_PROBLEMS)
  async update(
    @Owner() owner: string,
    @Param('id') id: string,
    @Body() dto: UpdateSessionDto,
  ): Promise<SessionDto> {
    return mapSession(await this.sessions.update(owner, id, dto));
  }

  @Delete(':id')
  @ApiOperation({
    summary: 'Delete a session and its messages',
    description:
      'Removes the session and all its messages in one transaction. Answers 204 with no body.',
  })
  @HttpCode(204)
  @ApiNoContentResponse({ description: 'The session and all its messages are gone.' })
  @ApiProblems(404)
  async remove(@Owner() owner: string, @Param('id') id: string): Promise<void> {
    await this.sessions.remove(owner, id);
  }
}
