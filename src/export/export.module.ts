import { Module } from '@nestjs/common';
import { MessagesModule } from '../messages/messages.module';
import { SessionsModule } from '../sessions/sessions.module';
import { ExportController } from './export.controller';
import { ExportService } from './export.service';

@Module({
  imports: [SessionsModule, MessagesModule],
  controllers: [ExportController],
  providers: [ExportService],
})
export class ExportModule {}
