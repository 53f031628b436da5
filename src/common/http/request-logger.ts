import { Logger } from '@nestjs/common';
import type { Request, RequestHandler, Response } from 'express';
import { randomUUID } from 'node:crypto';
import { instanceOf } from '../problems/problem';

const VALID_REQUEST_ID = /^[\w.:-]{1,128}$/;

/** The `X-Request-Id` header echoed back, or generated; returns it. */
function setRequestId(req: Request, res: Response): string {
  const incoming = req.headers['x-request-id'];
  const requestId =
    typeof incoming === 'string' && VALID_REQUEST_ID.test(incoming) ? incoming : randomUUID();
  res.setHeader('X-Request-Id', requestId);
  return requestId;
}

/**
 * One log line per request (method, path, status, duration, request id) and the `X-Request-Id`
 * header echoed back, or generated. Query strings and bodies are never logged: they carry user text.
 * When `LOG_LEVEL` drops those lines (`warn` and above), only the header is set: no timer, no
 * listener, no entry built to be thrown away.
 */
export function requestLogger(json: boolean, enabled: boolean): RequestHandler {
  if (!enabled) {
    return (req, res, next) => {
      setRequestId(req, res);
      next();
    };
  }
  const logger = new Logger('HTTP');
  return (req, res, next) => {
    const start = process.hrtime.bigint();
    const requestId = setRequestId(req, res);
    res.on('close', () => {
      // 'close' also fires when the client goes away first: then only what was really sent counts,
      // no status at all if the headers never left (res.statusCode would still say 200).
      const sent = res.headersSent;
      const entry = {
        method: req.method,
        path: instanceOf(req.originalUrl),
        ...(sent ? { status: res.statusCode } : {}),
        duration_ms: Math.round(Number(process.hrtime.bigint() - start) / 1e4) / 100,
        request_id: requestId,
        ...(res.writableFinished ? {} : { aborted: true }),
      };
      logger.log(
        json
          ? entry
          : `${entry.method} ${entry.path} ${entry.status ?? '-'} ${entry.duration_ms}ms id=${requestId}` +
              (entry.aborted ? ' (aborted)' : ''),
      );
    });
    next();
  };
}
