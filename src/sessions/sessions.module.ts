import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { SessionCount } from './session-count.entity';
import { SessionCountsRepository } from './session-counts.repository';
import { Session } from './session.entity';
import { SessionsController } from './sessions.controller';
import { SessionsRepository } from './sessions.repository';
import { SessionsService } from './sessions.service';

@Module({
  imports: [TypeOrmModule.forFeature([Session, SessionCount])],
  controllers: [SessionsController],
  providers: [SessionsService, SessionsRepository, SessionCountsRepository],
  exports: [SessionsRepository, SessionCountsRepository],
})
export class SessionsModule {}
