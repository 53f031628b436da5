import { Logger, OnModuleDestroy } from '@nestjs/common';
import type { ThrottlerStorage } from '@nestjs/throttler';
import { ThrottlerStorageRedisService } from '@nest-lab/throttler-storage-redis';

type Increment = Awaited<ReturnType<ThrottlerStorage['increment']>>;
const WARN_EVERY_MS = 10_000;
/**
 * How long one rate-limit count may take. A healthy Redis answers in a millisecond; one that holds
 * the connection but stops answering (paused, swapping, a runaway script) would otherwise hold
 * every request, as ioredis waits for a reply forever.
 */
export const REDIS_COMMAND_TIMEOUT_MS = 500;
/** After a failure, requests skip Redis this long rather than each waiting out the timeout. */
export const REDIS_RETRY_AFTER_MS = 2000;

/**
 * Rate-limit counters in Redis, shared by every process. When Redis does not answer, requests are
 * let through (and a warning logged) rather than failed: the limiter protects the service, it must
 * not become the reason it is down.
 */
export class ResilientRedisStorage implements ThrottlerStorage, OnModuleDestroy {
  private readonly logger = new Logger('RateLimit');
  private readonly redis: ThrottlerStorageRedisService;
  private lastWarning = 0;
  private skipUntil = 0;

  constructor(url: string) {
    this.redis = new ThrottlerStorageRedisService(url, {
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      connectTimeout: 2000,
      commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
    });
    this.redis.redis.on('error', (error: Error) => this.warn(error));
  }

  async increment(
    key: string,
    ttl: number,
    limit: number,
    blockDuration: number,
    throttlerName: string,
  ): Promise<Increment> {
    if (Date.now() >= this.skipUntil) {
      try {
        await this.connected();
        return await this.redis.increment(key, ttl, limit, blockDuration, throttlerName);
      } catch (error) {
        this.skipUntil = Date.now() + REDIS_RETRY_AFTER_MS;
        this.warn(error as Error);
      }
    }
    return {
      totalHits: 0,
      timeToExpire: Math.ceil(ttl / 1000),
      isBlocked: false,
      timeToBlockExpire: 0,
    };
  }

  /**
   * Waits, at most REDIS_COMMAND_TIMEOUT_MS, for a connection that is being made (a process just
   * started, or one reconnecting): without an offline queue a command sent before the handshake ends
   * fails at once, and the first requests of every new process would go uncounted.
   */
  private connected(): Promise<void> {
    const client = this.redis.redis;
    if (!['connecting', 'connect'].includes(client.status)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const settle = (error?: Error) => {
        clearTimeout(timer);
        client.off('ready', onReady);
        client.off('error', settle);
        client.off('end', onEnd);
        if (error) reject(error);
        else resolve();
      };
      const onReady = () => settle();
      const onEnd = () => settle(new Error('Connection is closed.'));
      const timer = setTimeout(
        () => settle(new Error(`no connection within ${REDIS_COMMAND_TIMEOUT_MS} ms`)),
        REDIS_COMMAND_TIMEOUT_MS,
      );
      client.once('ready', onReady);
      client.once('error', settle);
      client.once('end', onEnd);
    });
  }

  onModuleDestroy(): void {
    this.redis.onModuleDestroy();
  }

  private warn(error: Error): void {
    const now = Date.now();
    if (now - this.lastWarning < WARN_EVERY_MS) return;
    this.lastWarning = now;
    this.logger.warn(
      `Redis unavailable, requests are not rate-limited meanwhile: ${error.message}`,
    );
  }
}
