import {
  Body,
  CanActivate,
  Controller,
  Get,
  HttpCode,
  HttpException,
  Injectable,
  NotFoundException,
  Param,
  Post,
  Query,
  Req,
  Res,
  ServiceUnavailableException,
  StreamableFile,
  UseGuards,
} from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiExtraModels,
  ApiHeader,
  ApiOkResponse,
  ApiOperation,
  ApiParam,
  ApiProduces,
  ApiResponse,
  ApiTags,
  getSchemaPath,
} from '@nestjs/swagger';
import { ModuleRef } from '@nestjs/core';
import type { Request, Response } from 'express';
import { Owner, type OwnedRequest } from '../auth/owner.decorator';
import { ApiProblems, BODY_PROBLEMS } from '../common/problems/problem.dto';
import { ValidationProblemException } from '../common/problems/validation.pipe';
import { Idempotent } from '../idempotency/idempotent.decorator';
import { ChatMessage } from '../messages/chat-message.entity';
import { ChatMessageDto, mapChatMessage } from '../messages/dto/chat-message.dto';
import { CreateReplyDto, StreamQueryDto } from './dto/reply.dto';
import { LlmClient } from './llm-client';
import { liveSource, RepliesService } from './replies.service';
import { sseResponse } from './sse';

/** `POST …/replies` without LLM_BASE_URL: 503 before any other check of the request. */
@Injectable()
export class LlmConfiguredGuard implements CanActivate {
  constructor(private readonly llm: LlmClient) {}

  canActivate(): boolean {
    if (this.llm.configured) return true;
    throw new ServiceUnavailableException(
      'Replies from a language model are off: set LLM_BASE_URL to an OpenAI-compatible API (e.g. http://127.0.0.1:11434/v1 for Ollama) and restart the service.',
    );
  }
}

/** A reply that failed, answered in JSON mode: 502 (504 when it timed out), naming the message. */
export class ReplyFailedException extends HttpException {
  constructor(message: ChatMessage, timedOut: boolean) {
    super(
      {
        message: `The model failed: ${message.generation?.error ?? 'unknown error'}. The failed reply is stored as message ${message.id}.`,
        extras: { message_id: message.id },
      },
      timedOut ? 504 : 502,
    );
  }
}

const wantsEvents = (req: Request) => (req.headers.accept ?? '').includes('text/event-stream');

/** A client's offset into a reply's text: Last-Event-ID, else `?offset=`, else 0. */
function offsetOf(req: Request, query: string | undefined): number {
  // An empty Last-Event-ID is no id (as EventSource treats it).
  const given = req.header('Last-Event-ID') || query;
  if (given === undefined) return 0;
  if (!/^\d{1,15}$/.test(given)) {
    throw new ValidationProblemException([
      { field: 'offset', message: 'offset must be a non-negative integer' },
    ]);
  }
  return Number(given);
}

const EVENTS_DESCRIPTION =
  'Server-sent events (`text/event-stream`): `message` (the new reply, `in_progress`; only on `POST …/replies`), then `delta` events `{"content": "<new text>"}` whose `id:` is the length of the reply\'s text (UTF-16 code units) after them, then `done` with the final message (`complete`, `cancelled` or `failed`). A `: keep-alive` comment goes out at least every 15 s while nothing else does.';

const SSE_RESUME_EXAMPLE = [
  'retry: 1000',
  '',
  'id: 24',
  'event: delta',
  'data: {"content":" the Jerónimos Monastery"}',
  '',
  'event: done',
  'data: {"id":3,"session_id":"6f1c…","status":"complete","content":"Belém Tower, the Jerónimos Monastery", "…": "…"}',
  '',
].join('\n');

const SSE_EXAMPLE = [
  'retry: 1000',
  '',
  'event: message',
  'data: {"id":3,"session_id":"6f1c…","role":"assistant","content":"","status":"in_progress", "…": "…"}',
  '',
  'id: 12',
  'event: delta',
  'data: {"content":"Belém Tower,"}',
  '',
  SSE_RESUME_EXAMPLE.slice('retry: 1000\n\n'.length),
].join('\n');

@ApiTags('replies')
@ApiBearerAuth()
@ApiProblems(401, 429)
@ApiExtraModels(ChatMessageDto)
@Controller('api/v1/sessions/:id')
export class RepliesController {
  constructor(private readonly replies: RepliesService) {}

  @Post('replies')
  @UseGuards(LlmConfiguredGuard)
  @ApiOperation({
    summary: 'Ask the language model for a reply',
    description:
      'Stores an assistant message, child of `parent_id` (default: the current message), `in_progress`, and generates it from the path up to its parent with the model at `LLM_BASE_URL`. The generation belongs to the server: a client that disconnects does not stop it. With `Accept: text/event-stream` the reply streams as it is generated; otherwise the response waits for the end. 503 without `LLM_BASE_URL`. Accepts `Idempotency-Key` (a replay answers the reply as it is now, as JSON).',
  })
  @ApiProduces('application/json', 'text/event-stream')
  @ApiResponse({
    status: 201,
    description: 'JSON (no `Accept: text/event-stream`): the complete reply.',
    type: ChatMessageDto,
  })
  @ApiResponse({
    status: 200,
    description: `With \`Accept: text/event-stream\`: ${EVENTS_DESCRIPTION} JSON: the reply, cancelled while the response waited.`,
    content: {
      'text/event-stream': { schema: { type: 'string' }, example: SSE_EXAMPLE },
      'application/json': { schema: { $ref: getSchemaPath(ChatMessageDto) } },
    },
  })
  @ApiProblems(404, 409, 502, 503, 504, ...BODY_PROBLEMS)
  @Idempotent(mapChatMessage, refreshReply)
  async create(
    @Owner() owner: string,
    @Param('id') id: string,
    @Body() dto: CreateReplyDto,
    @Req() req: Request,
    @Res({ passthrough: true }) res: Response,
  ): Promise<ChatMessageDto | StreamableFile> {
    const reply = await this.replies.start(owner, id, dto);
    if (wantsEvents(req)) {
      return sseResponse(res, liveSource(reply), {
        offset: 0,
        first: reply.message,
        map: mapChatMessage,
        shutdown: this.replies.shutdown,
      });
    }
    const end = await reply.ended;
    if (!end.message) {
      if ('error' in end) throw end.error;
      throw new NotFoundException(
        `The reply ${reply.message.id} was deleted while it was generated.`,
      );
    }
    if (end.message.status === 'failed') throw new ReplyFailedException(end.message, end.timedOut);
    if (end.message.status === 'cancelled') res.status(200);
    return mapChatMessage(end.message);
  }

  @Get('messages/:message_id/stream')
  @ApiOperation({
    summary: "Follow a reply's text as it is generated",
    description:
      'From the offset given by `Last-Event-ID` (or `?offset=`, default 0): one `delta` with the text after it, then live deltas while the reply is in progress, then `done`. For a message that is not in progress: the rest as one delta (none when nothing is left), then `done`. Any process of a deployment can serve it.',
  })
  @ApiParam({ name: 'message_id', type: 'integer' })
  @ApiHeader({ name: 'Last-Event-ID', required: false, description: 'As `offset`; wins over it.' })
  @ApiProduces('text/event-stream')
  @ApiResponse({
    status: 200,
    description: EVENTS_DESCRIPTION,
    content: { 'text/event-stream': { schema: { type: 'string' }, example: SSE_RESUME_EXAMPLE } },
  })
  @ApiProblems(400, 404)
  async stream(
    @Owner() owner: string,
    @Param('id') id: string,
    @Param('message_id') messageId: string,
    @Query() query: StreamQueryDto,
    @Req() req: Request,
    @Res({ passthrough: true }) res: Response,
  ): Promise<StreamableFile> {
    const from = offsetOf(req, query.offset);
    const message = await this.replies.owned(owner, id, messageId);
    if (message.status !== 'in_progress' && from > message.content.length) {
      throw new ValidationProblemException([
        {
          field: 'offset',
          message: `offset ${from} is past the end of the message's text (${message.content.length})`,
        },
      ]);
    }
    return sseResponse(res, this.replies.source(owner, message), {
      offset: from,
      map: mapChatMessage,
      shutdown: this.replies.shutdown,
    });
  }

  @Post('messages/:message_id/cancel')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Cancel a reply in progress',
    description:
      'The generation stops; the text generated so far is kept, with status `cancelled`. 409 if the message is not in progress.',
  })
  @ApiParam({ name: 'message_id', type: 'integer' })
  @ApiOkResponse({ type: ChatMessageDto, description: 'The cancelled reply.' })
  @ApiProblems(404, 409)
  async cancel(
    @Owner() owner: string,
    @Param('id') id: string,
    @Param('message_id') messageId: string,
  ): Promise<ChatMessageDto> {
    return mapChatMessage(await this.replies.cancel(owner, id, messageId));
  }
}

/** A replayed `POST …/replies`: the reply as it is now (it may have ended since), or 404. */
async function refreshReply(
  stored: unknown,
  req: OwnedRequest,
  modules: ModuleRef,
): Promise<unknown> {
  const { id, session_id } = stored as ChatMessageDto;
  const replies = modules.get(RepliesService, { strict: false });
  return mapChatMessage(await replies.owned(req.owner ?? '', session_id, String(id)));
}
