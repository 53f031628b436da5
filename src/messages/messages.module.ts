import { Module } from '@nestjs/common';
import { SessionsModule } from '../sessions/sessions.module';
import { MessagesController } from './messages.controller';
import { MessagesService } from './messages.service';

/** The message routes; the messages' repository comes from SessionsModule. */
@Module({
  imports: [SessionsModule],
  controllers: [MessagesController],
  providers: [MessagesService],
  exports: [SessionsModule, MessagesService],
})
export class MessagesModule {}
