import { Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { AppModule } from './app.module';
import { configureApp } from './app.setup';
import type { Env } from './config/env.validation';

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/** Start-up failures end with one readable line and a non-zero exit, not a bare stack dump. */
function fail(context: string, error: unknown): never {
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`${context}: ${message.split('\n')[0]}\n`);
  process.exit(1);
}

/**
 * SIGTERM / SIGINT: Nest's shutdown hooks (enabled in configureApp) stop accepting connections,
 * let the requests in flight finish, close the database and then raise the signal again to end the
 * process. This listener turns that last step into exit code 0, which supervisors read as a clean
 * stop: once Nest's own listener is gone, its shutdown has finished. A second signal during the
 * shutdown is ignored, as Nest ignores it.
 */
function exitZeroAfterShutdown(): void {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      if (process.listenerCount(signal) === 1) process.exit(0);
    });
  }
}

async function bootstrap(): Promise<void> {
  const appModule = await AppModule.forRoot().catch((error) => fail('Configuration error', error));
  const app = await NestFactory.create<NestExpressApplication>(appModule, {
    bodyParser: false,
    bufferLogs: true,
    autoFlushLogs: false,
    abortOnError: false,
  }).catch((error) => fail('Start-up failed', error));
  configureApp(app);
  exitZeroAfterShutdown();
  await app.init().catch((error) => fail('Start-up failed', error));

  const config = app.get<ConfigService<Env, true>>(ConfigService);
  const port = config.get('PORT', { infer: true });
  const host = config.get('HOST', { infer: true });
  // Listening on the server itself: Nest's listen() would log the failure a second time.
  const server = app.getHttpServer();
  await new Promise<void>((resolve) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      fail(
        'Start-up failed',
        error.code === 'EADDRINUSE'
          ? new Error(`port ${port} on ${host} is already in use`)
          : error,
      ),
    );
    server.listen(port, host, resolve);
  });
  const logger = new Logger('Bootstrap');
  logger.log(`Listening on http://${host}:${port} (API docs at /docs)`);
  if (config.get('AUTH_MODE', { infer: true }) === 'none' && !isLoopback(host)) {
    logger.warn(
      `AUTH_MODE=none on ${host}: anyone who can reach this address can read and change every conversation. Use AUTH_MODE=api-key, or bind to 127.0.0.1.`,
    );
  }
}

void bootstrap();
