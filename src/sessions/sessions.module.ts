import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { ChatMessage } from '../messages/chat-message.entity';
import { ChatMessagesRepository } from '../messages/chat-messages.repository';
import { SessionCount } from './session-count.entity';
import { SessionCountsRepository } from './session-counts.repository';
import { Session } from './session.entity';
import { SessionsController } from './sessions.controller';
import { SessionsRepository } from './sessions.repository';
import { SessionsService } from './sessions.service';

/**
 * Sessions, and the repositories of the tables a session owns: its messages' repository lives here
 * too (MessagesModule uses it from here), since switching a session's branch reads its messages.
 */
@Module({
  imports: [TypeOrmModule.forFeature([Session, SessionCount, ChatMessage])],
  controllers: [SessionsController],
  providers: [SessionsService, SessionsRepository, SessionCountsRepository, ChatMessagesRepository],
  exports: [SessionsRepository, SessionCountsRepository, ChatMessagesRepository],
})
export class SessionsModule {}
