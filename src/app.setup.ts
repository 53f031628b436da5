import { ConfigService } from '@nestjs/config';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { IncomingMessage, Server, ServerResponse, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { bodyErrorHandler, importBody, jsonBody } from './common/body-parsing';
import { TOTAL_COUNT_HEADER } from './common/pagination';
import { instanceOf, problem } from './common/problem';
import { requestLogger } from './common/request-logger';
import { securityHeaders } from './common/security-headers';
import { setupSwagger } from './common/swagger';
import type { Env } from './config/env.validation';
import { createLogger } from './logger';

export const BODY_LIMIT = '1mb';
export const IMPORT_BODY_LIMIT = '50mb';
export const IMPORT_PATH = '/api/v1/import';

/**
 * Everything about the HTTP layer that lives on the app rather than in a module: the server and the
 * e2e tests both call this, so tests see exactly the middleware production runs.
 * The app must be created with `bodyParser: false`; JSON parsing is configured here.
 */
export function configureApp(app: NestExpressApplication): NestExpressApplication {
  const config = app.get<ConfigService<Env, true>>(ConfigService);
  const nodeEnv = config.get('NODE_ENV', { infer: true });
  app.useLogger(
    createLogger({ NODE_ENV: nodeEnv, LOG_LEVEL: config.get('LOG_LEVEL', { infer: true }) }),
  );
  app.flushLogs();
  app.disable('x-powered-by');
  // No ETags: the contract has no conditional requests, and hashing every body costs throughput.
  app.set('etag', false);
  app.use(requestLogger(nodeEnv === 'production'));
  app.use(securityHeaders(config.get('BEHIND_HTTPS', { infer: true })));
  const origins = config.get('CORS_ORIGINS', { infer: true });
  if (origins.length > 0) {
    app.enableCors({
      origin: origins.includes('*') ? true : origins,
      exposedHeaders: [TOTAL_COUNT_HEADER, 'Link', 'X-Request-Id'],
    });
  }
  // The import route's own limit and types come first; the general pipeline skips what it handled.
  app.use(IMPORT_PATH, importBody(IMPORT_BODY_LIMIT));
  app.use(jsonBody(BODY_LIMIT));
  app.use(bodyErrorHandler);

  setupSwagger(app, config.get('APP_NAME', { infer: true }));
  answerProtocolErrorsWithProblems(app.getHttpServer());
  app.enableShutdownHooks();
  return app;
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
