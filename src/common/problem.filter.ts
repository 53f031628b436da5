import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import type { Request, Response } from 'express';
import { instanceOf, problem, sendProblem } from './problem';
import { ValidationProblemException } from './validation.pipe';

function detailOf(exception: HttpException): string {
  const body = exception.getResponse();
  if (typeof body === 'string') return body;
  const message = (body as { message?: unknown }).message;
  if (Array.isArray(message)) return message.join('; ');
  return typeof message === 'string' ? message : exception.message;
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
      sendProblem(res, problem(status, detailOf(exception), instance, errors));
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
