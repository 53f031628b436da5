import { ConfigService } from '@nestjs/config';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { IncomingMessage, Server, ServerResponse, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { closeIfBodyUnread } from './common/http/body-parsing';
import { TOTAL_COUNT_HEADER } from './common/pagination/pagination';
import { instanceOf, problem } from './common/problems/problem';
import { requestLogger } from './common/http/request-logger';
import { securityHeaders } from './common/http/security-headers';
import { setupSwagger } from './common/openapi/swagger';
import type { Env } from './config/env.validation';
import { createLogger, logsAt } from './logger';

/** 50 MiB, counted after any Content-Encoding is undone. */
export const IMPORT_BODY_LIMIT = 50 * 1024 * 1024;
export const IMPORT_PATH = '/api/v1/import';

/** Every response header the contract gives clients, readable by a page on an allowed origin. */
export const EXPOSED_HEADERS = [
  TOTAL_COUNT_HEADER,
  'Link',
  'X-Request-Id',
  'RateLimit-Limit',
  'RateLimit-Remaining',
  'RateLimit-Reset',
  'Retry-After',
  'Idempotent-Replayed',
  'Content-Disposition',
  'WWW-Authenticate',
];

/**
 * Everything about the HTTP layer that lives on the app rather than in a module: the server and the
 * e2e tests both call this, so tests see exactly the middleware production runs.
 * The app must be created with `bodyParser: false`; JSON parsing is configured here.
 */
export function configureApp(app: NestExpressApplication): NestExpressApplication {
  const config = app.get<ConfigService<Env, true>>(ConfigService);
  const nodeEnv = config.get('NODE_ENV', { infer: true });
  const logLevel = config.get('LOG_LEVEL', { infer: true });
  app.useLogger(createLogger({ NODE_ENV: nodeEnv, LOG_LEVEL: logLevel }));
  app.flushLogs();
  caseSensitiveRouting(app);
  app.disable('x-powered-by');
  // No ETags: the contract has no conditional requests, and hashing every body costs throughput.
  app.set('etag', false);
  app.use(closeIfBodyUnread);
  app.use(requestLogger(nodeEnv === 'production', logsAt(logLevel, 'log')));
  app.use(securityHeaders(config.get('BEHIND_HTTPS', { infer: true })));
  const origins = config.get('CORS_ORIGINS', { infer: true });
  if (origins.length > 0) {
    app.enableCors({
      origin: origins.includes('*') ? true : origins,
      exposedHeaders: EXPOSED_HEADERS,
    });
  }
  // Bodies are parsed by the last global guard (BodyParsingGuard, in AuthModule), never by middleware.

  setupSwagger(app, config.get('APP_NAME', { infer: true }));
  answerProtocolErrorsWithProblems(app.getHttpServer());
  app.enableShutdownHooks();
  return app;
}

/**
 * `/API/v1/…` must not reach a route registered as `/api/v1/…`: idempotency scopes, logs and
 * limits all see the path as spelled. Express reads `case sensitive routing` once, when it creates
 * its router, and Nest has created it by now; each route takes the router's flag when it is
 * registered, which Nest does in `init()`, after this. So the flag is set on the router itself too.
 * Trailing slashes stay optional (strict routing off), as the contract says.
 */
function caseSensitiveRouting(app: NestExpressApplication): void {
  app.set('case sensitive routing', true);
  const router = (app.getHttpAdapter().getInstance() as { router?: { caseSensitive?: boolean } })
    .router;
  if (router) router.caseSensitive = true;
}

/**
 * Node answers a few requests before any middleware runs: malformed HTTP (400, or 431 for oversized
 * headers) and an `Expect` it cannot meet (417). Those answers are problem documents too.
 */
function answerProtocolErrorsWithProblems(server: Server): void {
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    const body = JSON.stringify(
      problem(
        417,
        `Unsupported Expect header: '${String(req.headers.expect)}'.`,
        instanceOf(req.url ?? '/'),
      ),
    );
    res.writeHead(417, {
      'Content-Type': 'application/problem+json; charset=utf-8',
      'Content-Length': Buffer.byteLength(body),
    });
    res.end(body);
  });
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    if (error.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
    const body = JSON.stringify(problem(status, 'Malformed HTTP request.', '/'));
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/problem+json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });
}
