/**
 * The bench's framework floor: our real application (AppModule, configureApp: the same middleware,
 * guards, pipe, filter and interceptors, started as main.ts starts it) with one more controller
 * that answers the bench's routes under `/api/v1/floor` with constant bodies — the ceiling's answers,
 * captured by the bench. Its routes take the same DTOs (so the validation pipe runs as for ours),
 * idempotency and page headers, but no database and no service code. What ours does above this
 * floor is the cost of our services, TypeORM and the database.
 *
 * Environment: FLOOR_BODIES (a JSON file of the bodies and list headers to answer), FLOOR_PREFIX
 * (where its routes live, beside ours), and whatever
 * our server reads (DATABASE_URL, PORT, HOST, …). Compiled by servers.ts with its imports of
 * `../src/…` pointed at the built `dist/…`, so it runs the very code the server runs.
 */
import { Body, Controller, type DynamicModule, Get, Param, Post, Query, Res } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { Response } from 'express';
import { readFileSync } from 'node:fs';
import { AppModule } from '../src/app.module';
import { configureApp } from '../src/app.setup';
import { Owner } from '../src/auth/owner.decorator';
import { Idempotent } from '../src/idempotency/idempotent.decorator';
import { CreateChatMessageDto, ListMessagesQueryDto } from '../src/messages/dto/chat-message.dto';
import { ListSessionsQueryDto } from '../src/sessions/dto/session.dto';

import type { FloorAnswer, FloorBodies } from './servers';

function floorController(prefix: string, bodies: FloorBodies) {
  const withHeaders = (res: Response, answer: FloorAnswer) => {
    for (const [name, value] of Object.entries(answer.headers ?? {})) res.setHeader(name, value);
    return answer.body;
  };

  @Controller(`${prefix}/sessions`)
  class FloorController {
    @Get()
    list(
      @Owner() _owner: string,
      @Query() _query: ListSessionsQueryDto,
      @Res({ passthrough: true }) res: Response,
    ): unknown {
      return withHeaders(res, bodies.list);
    }

    @Get(':id')
    get(@Owner() _owner: string, @Param('id') _id: string): unknown {
      return bodies.session.body;
    }

    @Post(':id/messages')
    @Idempotent((body: unknown) => body)
    append(
      @Owner() _owner: string,
      @Param('id') _id: string,
      @Body() _dto: CreateChatMessageDto,
    ): unknown {
      return bodies.append.body;
    }

    @Get(':id/messages')
    history(
      @Owner() _owner: string,
      @Param('id') _id: string,
      @Query() query: ListMessagesQueryDto,
      @Res({ passthrough: true }) res: Response,
    ): unknown {
      return withHeaders(res, query.branch === undefined ? bodies.history : bodies.branch);
    }
  }
  return FloorController;
}

async function floorModule(prefix: string, bodies: FloorBodies): Promise<DynamicModule> {
  const root = await AppModule.forRoot();
  return { ...root, controllers: [...(root.controllers ?? []), floorController(prefix, bodies)] };
}

async function main(): Promise<void> {
  const { FLOOR_BODIES: file, FLOOR_PREFIX: prefix } = process.env;
  if (!file || !prefix) throw new Error('FLOOR_BODIES and FLOOR_PREFIX must be set');
  const bodies = JSON.parse(readFileSync(file, 'utf8')) as FloorBodies;
  // The options main.ts starts the server with.
  const app = await NestFactory.create<NestExpressApplication>(await floorModule(prefix, bodies), {
    bodyParser: false,
    bufferLogs: true,
    autoFlushLogs: false,
    abortOnError: false,
  });
  configureApp(app);
  await app.init();
  await app.listen(Number(process.env.PORT ?? 8002), process.env.HOST ?? '127.0.0.1');
}

main().catch((error: unknown) => {
  process.stderr.write(`floor server: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
