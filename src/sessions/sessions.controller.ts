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
  ApiTags,
} from '@nestjs/swagger';
import type { Response } from 'express';
import { Owner } from '../auth/owner.decorator';
import { listHeaders, setPageHeaders } from '../common/pagination';
import { ApiProblems, BODY_PROBLEMS } from '../common/problem.dto';
import {
  CreateSessionDto,
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
  @ApiBody({ type: CreateSessionDto, required: false })
  @ApiCreatedResponse({ type: SessionDto, description: 'The new session.' })
  @ApiProblems(...BODY_PROBLEMS)
  @Idempotent(mapSession)
  async create(@Owner() owner: string, @Body() dto: CreateSessionDto): Promise<SessionDto> {
    return mapSession(await this.sessions.create(owner, dto));
  }

  @Get()
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
  @ApiOkResponse({ type: SessionDto })
  @ApiProblems(404)
  async get(@Owner() owner: string, @Param('id') id: string): Promise<SessionDto> {
    return mapSession(await this.sessions.get(owner, id));
  }

  @Patch(':id')
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
  @HttpCode(204)
  @ApiNoContentResponse({ description: 'The session and all its messages are gone.' })
  @ApiProblems(404)
  async remove(@Owner() owner: string, @Param('id') id: string): Promise<void> {
    await this.sessions.remove(owner, id);
  }
}
