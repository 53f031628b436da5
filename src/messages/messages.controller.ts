import { Body, Controller, Delete, Get, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiOperation,
  ApiParam,
  ApiTags,
} from '@nestjs/swagger';
import type { Response } from 'express';
import { Owner } from '../auth/owner.decorator';
import {
  listHeaders,
  type Page,
  pageHeaders,
  type StreamedPage,
} from '../common/pagination/pagination';
import { inChunks } from '../export/export-format';
import { jsonArray, sendStream } from '../export/stream-response';
import { ApiProblems, BODY_PROBLEMS } from '../common/problems/problem.dto';
import {
  ChatMessageDto,
  CreateChatMessageDto,
  ListMessagesQueryDto,
  mapBranchMessage,
  mapChatMessage,
} from './dto/chat-message.dto';
import { Idempotent } from '../idempotency/idempotent.decorator';
import { MessagesService } from './messages.service';

/** A page answered whole, or streamed a chunk at a time (see MessagesService.list). */
async function sendPage<T>(
  res: Response,
  path: string,
  page: Page<T> | StreamedPage<T>,
  map: (item: T) => ChatMessageDto,
): Promise<void> {
  const headers = pageHeaders(path, page);
  if ('items' in page) {
    res.set(headers).json(page.items.map(map));
    return;
  }
  await sendStream(
    res,
    { ...headers, 'Content-Type': 'application/json; charset=utf-8' },
    inChunks(jsonArray(page.chunks, map)),
    'Message page',
  );
}

@ApiTags('messages')
@ApiBearerAuth()
@ApiProblems(401, 429)
@Controller('api/v1/sessions/:id/messages')
export class MessagesController {
  constructor(private readonly messages: MessagesService) {}

  @Post()
  @ApiOperation({
    summary: 'Append a message',
    description:
      "`content` (1–100,000 characters), `role` (`user` by default, `assistant` or `system`) and optional JSON `metadata`. Stored in one transaction with the session's new `last_updated_at`. Accepts `Idempotency-Key`.",
  })
  @ApiCreatedResponse({
    type: ChatMessageDto,
    description: "The stored message; the session's last_updated_at is now its timestamp.",
  })
  @ApiProblems(404, ...BODY_PROBLEMS)
  @Idempotent(mapChatMessage)
  async append(
    @Owner() owner: string,
    @Param('id') id: string,
    @Body() dto: CreateChatMessageDto,
  ): Promise<ChatMessageDto> {
    return mapChatMessage(await this.messages.append(owner, id, dto));
  }

  @Get()
  @ApiOperation({
    summary: 'List the messages of a session',
    description:
      'Oldest first (`order=desc`: newest first). Page by `skip`/`limit`, or by `after`/`before` (message ids of this session) and the `Link: rel="next"` header. See `docs/API.md` § Cursor pagination. `branch=current` or `branch={message_id}`: only the path from the root to that message, root first, each message with its `sibling_ids`.',
  })
  @ApiOkResponse({
    type: [ChatMessageDto],
    description:
      'Ordered by timestamp, then id (insertion order), oldest first unless order=desc. Page by `skip` or by `after`/`before`.',
    headers: listHeaders(
      'Number of messages in the session (with `branch`: on the path), ignoring paging.',
    ),
  })
  @ApiProblems(400, 404)
  async list(
    @Owner() owner: string,
    @Param('id') id: string,
    @Query() query: ListMessagesQueryDto,
    @Res() res: Response,
  ): Promise<void> {
    const path = `/api/v1/sessions/${encodeURIComponent(id)}/messages`;
    const { branch } = query;
    if (branch === undefined) {
      await sendPage(res, path, await this.messages.list(owner, id, query), mapChatMessage);
    } else {
      const page = await this.messages.branch(owner, id, { ...query, branch });
      await sendPage(res, path, page, mapBranchMessage);
    }
  }

  @Get(':message_id')
  @ApiOperation({
    summary: 'Get one message',
    description:
      '404 if the session or the message is unknown, or the message belongs to another session.',
  })
  @ApiParam({ name: 'message_id', type: 'integer' })
  @ApiOkResponse({ type: ChatMessageDto, description: 'The message.' })
  @ApiProblems(404)
  async get(
    @Owner() owner: string,
    @Param('id') id: string,
    @Param('message_id') messageId: string,
  ): Promise<ChatMessageDto> {
    return mapChatMessage(await this.messages.get(owner, id, messageId));
  }

  @Delete(':message_id')
  @ApiOperation({
    summary: 'Delete one message',
    description:
      "The session's `message_count` drops by one; its `last_updated_at` stays. Answers 204 with no body.",
  })
  @HttpCode(204)
  @ApiParam({ name: 'message_id', type: 'integer' })
  @ApiNoContentResponse({
    description: 'The message is gone; message_count drops, last_updated_at stays.',
  })
  @ApiProblems(404)
  async remove(
    @Owner() owner: string,
    @Param('id') id: string,
    @Param('message_id') messageId: string,
  ): Promise<void> {
    await this.messages.remove(owner, id, messageId);
  }
}
