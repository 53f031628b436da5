import { Body, Controller, Delete, Get, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
import {
  ApiBody,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiTags,
} from '@nestjs/swagger';
import type { Response } from 'express';
import { TOTAL_COUNT_HEADER, totalCountHeader } from '../common/pagination';
import { ApiProblems, BODY_PROBLEMS } from '../common/problem.dto';
import { CreateSessionDto, ListSessionsQueryDto, mapSession, SessionDto } from './dto/session.dto';
import { SessionsService } from './sessions.service';

@ApiTags('sessions')
@Controller('api/v1/sessions')
export class SessionsController {
  constructor(private readonly sessions: SessionsService) {}

  @Post()
  @ApiBody({ type: CreateSessionDto, required: false })
  @ApiCreatedResponse({ type: SessionDto, description: 'The new session.' })
  @ApiProblems(...BODY_PROBLEMS)
  async create(@Body() dto: CreateSessionDto): Promise<SessionDto> {
    return mapSession(await this.sessions.create(dto));
  }

  @Get()
  @ApiOkResponse({
    type: [SessionDto],
    headers: totalCountHeader('Number of sessions the query matches, ignoring skip/limit.'),
    description: 'Most recently active first.',
  })
  @ApiProblems(400)
  async list(
    @Query() query: ListSessionsQueryDto,
    @Res({ passthrough: true }) res: Response,
  ): Promise<SessionDto[]> {
    const page = await this.sessions.list(query);
    res.setHeader(TOTAL_COUNT_HEADER, page.total);
    return page.items.map(mapSession);
  }

  @Get(':id')
  @ApiOkResponse({ type: SessionDto })
  @ApiProblems(404)
  async get(@Param('id') id: string): Promise<SessionDto> {
    return mapSession(await this.sessions.get(id));
  }

  @Delete(':id')
  @HttpCode(204)
  @ApiNoContentResponse({ description: 'The session and all its messages are gone.' })
  @ApiProblems(404)
  async remove(@Param('id') id: string): Promise<void> {
    await this.sessions.remove(id);
  }
}
