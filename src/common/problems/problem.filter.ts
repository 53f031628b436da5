import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import type { Request, Response } from 'express';
import { QueryFailedError } from 'typeorm';
import { TransactionLostError } from '../../database/database.service';
import { instanceOf, problem, sendProblem } from './problem';
import { ValidationProblemException } from './validation.pipe';

/** Seconds a client is asked to wait before retrying after the database failed under it. */
export const DATABASE_RETRY_AFTER_S = 5;

/**
 * The database failed for reasons of its own (no space, I/O, memory, lock timeouts, connection
 * lost, statement timeout): the client did nothing wrong and may retry, so this is not a 500.
 * A full disk is 507 Insufficient Storage, which says exactly that; the rest are 503. Neither
 * detail names the driver's message, which can carry paths and addresses (it goes to the log).
 */
/**
 * What `pg` and its pool throw, with no error code, when no connection can be had in time: every
 * pooled connection stayed busy for DB_CONNECT_TIMEOUT_MS (a burst of requests larger than
 * DB_POOL_SIZE can serve in that time), a new connection did not open in time, or one was lost.
 */
const POOL_FAILURES = [
  'timeout exceeded when trying to connect',
  'Connection terminated due to connection timeout',
  'Connection terminated unexpectedly',
];

function databaseFailure(exception: unknown): { status: 503 | 507; detail: string } | undefined {
  const unavailable = {
    status: 503,
    detail: 'The database could not complete the request; try again later.',
  } as const;
  if (exception instanceof TransactionLostError) return unavailable;
  const driverError: unknown =
    exception instanceof QueryFailedError ? (exception.driverError as unknown) : exception;
  if (driverError instanceof Error && POOL_FAILURES.includes(driverError.message))
    return unavailable;
  const code = codeOf(exception instanceof QueryFailedError ? exception.driverError : exception);
  if (code === undefined) return undefined;
  if (code === 'SQLITE_FULL' || code === '53100') {
    return {
      status: 507,
      detail: 'The server has run out of storage space; nothing was saved. Try again later.',
    };
  }
  const transient =
    /^SQLITE_(IOERR|NOMEM|BUSY|LOCKED)/.test(code) ||
    // PostgreSQL: insufficient resources, connection exceptions, shutdowns, statement timeout.
    /^(53|08)/.test(code) ||
    ['57P01', '57P02', '57P03', '57014'].includes(code) ||
    ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE'].includes(code);
  return transient ? unavailable : undefined;
}

function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

function detailOf(exception: HttpException): string {
  const body = exception.getResponse();
  if (typeof body === 'string') return body;
  const message = (body as { message?: unknown }).message;
  if (Array.isArray(message)) return message.join('; ');
  return typeof message === 'string' ? message : exception.message;
}

/**
 * Members a problem adds to the standard ones (RFC 9457 §3.2), given by the exception as
 * `{ message, extras }` (e.g. a failed reply's `message_id`).
 */
function extrasOf(exception: HttpException): Record<string, unknown> {
  const body = exception.getResponse();
  if (typeof body !== 'object' || body === null) return {};
  const extras = (body as { extras?: unknown }).extras;
  return typeof extras === 'object' && extras !== null ? (extras as Record<string, unknown>) : {};
}

/** Turns every error into the contract's problem document; logs the unexpected ones with their stack. */
@Catch()
export class ProblemFilter implements ExceptionFilter {
  private readonly logger = new Logger('Exceptions');

  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const req = http.getRequest<Request>();
    const res = http.getResponse<Response>();
    const instance = instanceOf(req.originalUrl ?? req.url);
    if (res.headersSent) {
      this.logger.error(exception instanceof Error ? exception.stack : String(exception));
      res.end();
      return;
    }
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      const errors = exception instanceof ValidationProblemException ? exception.errors : undefined;
      let detail = detailOf(exception);
      // Nest's answer for an unknown route repeats the whole URL; query strings carry user text.
      if (detail === `Cannot ${req.method} ${req.url}`) detail = `Cannot ${req.method} ${instance}`;
      sendProblem(res, { ...problem(status, detail, instance, errors), ...extrasOf(exception) });
      return;
    }
    const failure = databaseFailure(exception);
    if (failure) {
      this.logger.error(
        `Database failure on ${req.method} ${instance} (answered ${failure.status}): ${
          exception instanceof Error ? exception.stack : String(exception)
        }`,
      );
      if (failure.status === 503) res.setHeader('Retry-After', DATABASE_RETRY_AFTER_S);
      sendProblem(res, problem(failure.status, failure.detail, instance));
      return;
    }
    this.logger.error(
      `Unhandled error on ${req.method} ${instance}: ${
        exception instanceof Error ? exception.stack : String(exception)
      }`,
    );
    sendProblem(res, problem(500, 'An unexpected error occurred.', instance));
  }
}
