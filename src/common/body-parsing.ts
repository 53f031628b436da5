import { Logger } from '@nestjs/common';
import express, { ErrorRequestHandler, Request, RequestHandler } from 'express';
import { jsonDepth } from './json-bounds';
import { instanceOf, problem, sendProblem } from './problem';

/** Deeper bodies are refused before any code walks them (the contract's deepest field is 17 levels). */
export const BODY_MAX_DEPTH = 32;
const WITH_BODY = new Set(['POST', 'PUT', 'PATCH']);
const JSON_TYPES = ['application/json', 'application/*+json'];

function hasBody(req: Request): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

function isJson(req: Request): boolean {
  return Boolean(req.is(JSON_TYPES));
}

class BodyProblem extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** 415 for a body that is not JSON, before anything reads it. */
const requireJson: RequestHandler = (req, _res, next) => {
  if (WITH_BODY.has(req.method) && hasBody(req) && !isJson(req)) {
    const type = req.headers['content-type'] ?? 'none';
    next(new BodyProblem(415, `Unsupported Content-Type '${type}': send application/json.`));
    return;
  }
  next();
};

/** A missing body reads as `{}`; a body nested deeper than any valid one is refused with a 400. */
const checkParsedBody: RequestHandler = (req, _res, next) => {
  if (WITH_BODY.has(req.method) && req.body === undefined) req.body = {};
  if (jsonDepth(req.body, BODY_MAX_DEPTH) > BODY_MAX_DEPTH) {
    next(new BodyProblem(400, `JSON body is nested more than ${BODY_MAX_DEPTH} levels deep.`));
    return;
  }
  next();
};

/**
 * The JSON body pipeline: content-type check, size-limited strict parse, depth guard. Only methods
 * that take a body are parsed; a body sent with GET or DELETE is ignored, as HTTP gives it no meaning.
 */
export function jsonBody(limit: string): RequestHandler[] {
  const parse = express.json({ limit, strict: true, type: JSON_TYPES });
  const parseWithBody: RequestHandler = (req, res, next) =>
    WITH_BODY.has(req.method) ? parse(req, res, next) : next();
  return [requireJson, parseWithBody, checkParsedBody];
}

interface HttpError {
  status?: number;
  statusCode?: number;
  type?: string;
  expose?: boolean;
  message?: string;
  limit?: number;
}

const logger = new Logger('BodyParser');

/** Body errors happen before Nest's router, so this express error handler answers them as problems. */
export const bodyErrorHandler: ErrorRequestHandler = (err: HttpError, req, res, next) => {
  if (res.headersSent) {
    next(err);
    return;
  }
  const instance = instanceOf(req.originalUrl);
  const status = err.status ?? err.statusCode ?? 500;
  let detail: string;
  if (err instanceof BodyProblem) detail = err.message ?? '';
  else if (err.type === 'entity.parse.failed') detail = 'Malformed JSON in request body.';
  else if (err.type === 'entity.too.large')
    detail = `Request body exceeds the ${err.limit} byte limit.`;
  else if (status >= 400 && status < 500 && err.expose) detail = err.message ?? 'Bad request.';
  else {
    logger.error(`Unhandled body error on ${req.method} ${instance}: ${String(err.message)}`);
    sendProblem(res, problem(500, 'An unexpected error occurred.', instance));
    return;
  }
  sendProblem(res, problem(status, detail, instance));
};
