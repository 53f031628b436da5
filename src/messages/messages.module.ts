import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { SessionsModule } from '../sessions/sessions.module';
import { ChatMessage } from './chat-message.entity';
import { ChatMessagesRepository } from './chat-messages.repository';
import { MessagesController } from './messages.controller';
import { MessagesService } from './messages.service';

@Module({
  imports: [TypeOrmModule.forFeature([ChatMessage]), SessionsModule],
  controllers: [MessagesController],
  providers: [MessagesService, ChatMessagesRepository],
  exports: [ChatMessagesRepository],
})
export class MessagesModule {}
