import { Module } from '@nestjs/common';
import { MessagesModule } from '../messages/messages.module';
import { SessionsModule } from '../sessions/sessions.module';
import { ImportController } from './import.controller';
import { ImportService } from './import.service';

@Module({
  imports: [SessionsModule, MessagesModule],
  controllers: [ImportController],
  providers: [ImportService],
})
export class ImportModule {}
