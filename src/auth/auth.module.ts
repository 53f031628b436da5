import { Global, Module } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { APP_GUARD } from '@nestjs/core';
import { ThrottlerModule } from '@nestjs/throttler';
import { TypeOrmModule } from '@nestjs/typeorm';
import { BodyParsingGuard } from '../common/http/body-parsing';
import type { Env } from '../config/env.validation';
import { ApiKey } from './api-key.entity';
import { ApiKeysRepository } from './api-keys.repository';
import { ApiKeysService } from './api-keys.service';
import { AuthFailureLimiter } from './auth-failures';
import { AuthGuard } from './auth.guard';
import { RateLimitGuard } from './rate-limit.guard';
import { ResilientRedisStorage } from './resilient-storage';

@Global()
@Module({
  imports: [
    TypeOrmModule.forFeature([ApiKey]),
    ThrottlerModule.forRootAsync({
      inject: [ConfigService],
      useFactory: (config: ConfigService<Env, true>) => {
        const limit = config.get('RATE_LIMIT_PER_MINUTE', { infer: true });
        const redisUrl = config.get('REDIS_URL', { infer: true });
        return {
          throttlers: [{ name: 'default', ttl: 60_000, limit: Math.max(limit, 1) }],
          skipIf: () => limit === 0,
          // Without Redis each process counts alone (documented in the README).
          storage: redisUrl && limit > 0 ? new ResilientRedisStorage(redisUrl) : undefined,
        };
      },
    }),
  ],
  providers: [
    ApiKeysRepository,
    ApiKeysService,
    AuthFailureLimiter,
    // Guards run in this order: the owner is known before requests are counted against it, and a
    // body is read only from a caller who is known and within budget.
    { provide: APP_GUARD, useClass: AuthGuard },
    { provide: APP_GUARD, useClass: RateLimitGuard },
    { provide: APP_GUARD, useClass: BodyParsingGuard },
  ],
  exports: [ApiKeysService],
})
export class AuthModule {}
