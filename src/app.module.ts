import { DynamicModule, Module } from '@nestjs/common';
import { ConfigModule } from '@nestjs/config';
import { APP_FILTER, APP_PIPE } from '@nestjs/core';
import { AppController } from './app.controller';
import { AuthModule } from './auth/auth.module';
import { ChatPageModule } from './chat-page';
import { GracefulShutdown } from './common/http/graceful-shutdown';
import { ProblemFilter } from './common/problems/problem.filter';
import { AppValidationPipe } from './common/problems/validation.pipe';
import { validateEnv } from './config/env.validation';
import { loadEnvFile } from './config/load-env';
import { DatabaseModule } from './database/database.module';
import { ExportModule } from './export/export.module';
import { HealthModule } from './health/health.module';
import { IdempotencyModule } from './idempotency/idempotency.module';
import { ImportModule } from './import/import.module';
import { MessagesModule } from './messages/messages.module';
import { RepliesModule } from './replies/replies.module';
import { SearchModule } from './search/search.module';
import { SessionsModule } from './sessions/sessions.module';

@Module({})
export class AppModule {
  /**
   * Reads and validates the environment (and `.env`) when called, not when this file is imported,
   * so a bad value surfaces as one error before anything starts, and tests can set the environment
   * before each boot.
   */
  static async forRoot(): Promise<DynamicModule> {
    loadEnvFile();
    return {
      module: AppModule,
      imports: [
        await ConfigModule.forRoot({
          isGlobal: true,
          cache: true,
          ignoreEnvFile: true,
          validate: validateEnv,
        }),
        DatabaseModule,
        AuthModule,
        IdempotencyModule,
        SessionsModule,
        MessagesModule,
        RepliesModule,
        SearchModule,
        ExportModule,
        ImportModule,
        HealthModule,
        ChatPageModule,
      ],
      controllers: [AppController],
      providers: [
        { provide: APP_PIPE, useClass: AppValidationPipe },
        { provide: APP_FILTER, useClass: ProblemFilter },
        GracefulShutdown,
      ],
    };
  }
}
