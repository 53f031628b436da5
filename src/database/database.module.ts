import { Global, Module } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { Env } from '../config/env.validation';
import { buildDataSourceOptions } from './database.options';
import { CursorService } from './cursor.service';
import { DatabaseService } from './database.service';

@Global()
@Module({
  imports: [
    TypeOrmModule.forRootAsync({
      inject: [ConfigService],
      useFactory: (config: ConfigService<Env, true>) => ({
        ...buildDataSourceOptions({
          DATABASE: config.get('DATABASE', { infer: true }),
          SQLITE_SYNCHRONOUS: config.get('SQLITE_SYNCHRONOUS', { infer: true }),
        }),
        migrationsRun: true,
        retryAttempts: 0,
      }),
    }),
  ],
  providers: [DatabaseService, CursorService],
  exports: [DatabaseService, CursorService],
})
export class DatabaseModule {}
