import { STATUS_CODES } from 'node:http';
import type { Response } from 'express';

export interface FieldError {
  field: string;
  message: string;
}

/** An RFC 9457 problem document, the body of every error response. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance: string;
  errors?: FieldError[];
}

export function problem(
  status: number,
  detail: string,
  instance: string,
  errors?: FieldError[],
): Problem {
  return {
    type: 'about:blank',
    title: STATUS_CODES[status] ?? 'Error',
    status,
    detail,
    instance,
    ...(errors ? { errors } : {}),
  };
}

/** The request path without its query string: query strings may carry user text. */
export function instanceOf(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

export function sendProblem(res: Response, body: Problem): void {
  res.status(body.status).type('application/problem+json').send(JSON.stringify(body));
}
