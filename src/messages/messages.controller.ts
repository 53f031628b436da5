import { Body, Controller, Get, Param, Post, Query, Res } from '@nestjs/common';
import { ApiCreatedResponse, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { TOTAL_COUNT_HEADER, totalCountHeader } from '../common/pagination';
import { ApiProblems, BODY_PROBLEMS } from '../common/problem.dto';
import {
  ChatMessageDto,
  CreateChatMessageDto,
  ListMessagesQueryDto,
  mapChatMessage,
} from './dto/chat-message.dto';
import { MessagesService } from './messages.service';

@ApiTags('messages')
@Controller('api/v1/sessions/:id/messages')
export class MessagesController {
  constructor(private readonly messages: MessagesService) {}

  @Post()
  @ApiCreatedResponse({
    type: ChatMessageDto,
    description: "The stored message; the session's last_updated_at is now its timestamp.",
  })
  @ApiProblems(404, ...BODY_PROBLEMS)
  async append(
    @Param('id') id: string,
    @Body() dto: CreateChatMessageDto,
  ): Promise<ChatMessageDto> {
    return mapChatMessage(await this.messages.append(id, dto));
  }

  @Get()
  @ApiOkResponse({
    type: [ChatMessageDto],
    description: 'Oldest first; equal timestamps in insertion order.',
    headers: totalCountHeader('Number of messages in the session, ignoring skip/limit.'),
  })
  @ApiProblems(400, 404)
  async list(
    @Param('id') id: string,
    @Query() query: ListMessagesQueryDto,
    @Res({ passthrough: true }) res: Response,
  ): Promise<ChatMessageDto[]> {
    const page = await this.messages.list(id, query);
    res.setHeader(TOTAL_COUNT_HEADER, page.total);
    return page.items.map(mapChatMessage);
  }
}
