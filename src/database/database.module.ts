import { Global, Module } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { Env } from '../config/env.validation';
import { CursorService } from './cursor.service';
import { openDataSource, type StartupOptions } from './data-source.factory';
import { buildDataSourceOptions } from './database.options';
import { DatabaseService } from './database.service';
import { Setting } from './setting.entity';
import { SettingsRepository } from './settings.repository';

@Global()
@Module({
  imports: [
    TypeOrmModule.forRootAsync({
      inject: [ConfigService],
      useFactory: (config: ConfigService<Env, true>) => ({
        ...buildDataSourceOptions({
          DATABASE: config.get('DATABASE', { infer: true }),
          SQLITE_SYNCHRONOUS: config.get('SQLITE_SYNCHRONOUS', { infer: true }),
          DB_POOL_SIZE: config.get('DB_POOL_SIZE', { infer: true }),
          DB_CONNECT_TIMEOUT_MS: config.get('DB_CONNECT_TIMEOUT_MS', { infer: true }),
          DB_STATEMENT_TIMEOUT_MS: config.get('DB_STATEMENT_TIMEOUT_MS', { infer: true }),
        }),
        startupTimeoutMs: config.get('DB_STARTUP_TIMEOUT_MS', { infer: true }),
        autoLoadEntities: true,
        retryAttempts: 0,
      }),
      // Nest's own retry logs a stack per attempt; openDataSource retries PostgreSQL with one line.
      dataSourceFactory: (options) => openDataSource(options as StartupOptions),
    }),
    TypeOrmModule.forFeature([Setting]),
  ],
  providers: [DatabaseService, CursorService, SettingsRepository],
  exports: [DatabaseService, CursorService],
})
export class DatabaseModule {}
