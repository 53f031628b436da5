import { Module } from '@nestjs/common';
import { MessagesModule } from '../messages/messages.module';
import { GenerationManager } from './generation-manager';
import { LlmClient } from './llm-client';
import { LlmConfiguredGuard, RepliesController } from './replies.controller';
import { RepliesService } from './replies.service';
import { ReplyEvents } from './reply-events';

/** Replies from a language model: the routes, the generations this process runs, and their notices. */
@Module({
  imports: [MessagesModule],
  controllers: [RepliesController],
  providers: [RepliesService, GenerationManager, LlmClient, ReplyEvents, LlmConfiguredGuard],
})
export class RepliesModule {}
