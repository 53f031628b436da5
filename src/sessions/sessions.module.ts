import { Module } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { Env } from '../config/env.validation';
import { DatabaseService } from '../database/database.service';
import { ChatMessage } from '../messages/chat-message.entity';
import { ChatMessagesRepository } from '../messages/chat-messages.repository';
import { OwnerRule } from './owner-rule';
import { RetentionSweep } from './retention-sweep';
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
  providers: [
    {
      provide: OwnerRule,
      inject: [DatabaseService, ConfigService],
      useFactory: (db: DatabaseService, config: ConfigService<Env, true>) =>
        new OwnerRule(db.isSqlite, config.get('RETENTION_DAYS', { infer: true })),
    },
    SessionsService,
    SessionsRepository,
    SessionCountsRepository,
    ChatMessagesRepository,
    RetentionSweep,
  ],
  exports: [SessionsRepository, SessionCountsRepository, ChatMessagesRepository],
})
export class SessionsModule {}
