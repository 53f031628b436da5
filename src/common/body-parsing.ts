import { Logger } from '@nestjs/common';
import express, { ErrorRequestHandler, Request, RequestHandler } from 'express';
import { jsonDepth } from './json-bounds';
import { instanceOf, problem, sendProblem } from './problem';

/** Deeper bodies are refused before any code walks them (the contract's deepest field is 17 levels). */
export const BODY_MAX_DEPTH = 32;
/** Import files nest deeper: an array of exports, each with messages and their 16-level metadata. */
export const IMPORT_MAX_DEPTH = 64;
const WITH_BODY = new Set(['POST', 'PUT', 'PATCH']);
const JSON_TYPES = ['application/json', 'application/*+json'];
export const NDJSON_TYPE = 'application/x-ndjson';

/**
 * Requests whose body a route-specific pipeline (registered before the general one) has handled;
 * the general JSON pipeline leaves them alone, so each route gets exactly one size limit.
 */
const handledBodies = new WeakSet<Request>();

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
  if (handledBodies.has(req)) return next();
  if (WITH_BODY.has(req.method) && hasBody(req) && !isJson(req)) {
    const type = req.headers['content-type'] ?? 'none';
    next(new BodyProblem(415, `Unsupported Content-Type '${type}': send application/json.`));
    return;
  }
  next();
};

/** A missing body reads as `{}`; a body nested deeper than any valid one is refused with a 400. */
const checkParsedBody: RequestHandler = (req, _res, next) => {
  if (handledBodies.has(req)) return next();
  if (WITH_BODY.has(req.method) && req.body === undefined) req.body = {};
  next(tooDeep(req.body, BODY_MAX_DEPTH));
};

function tooDeep(body: unknown, maxDepth: number): BodyProblem | undefined {
  return jsonDepth(body, maxDepth) > maxDepth
    ? new BodyProblem(400, `JSON body is nested more than ${maxDepth} levels deep.`)
    : undefined;
}

/**
 * The JSON body pipeline: content-type check, size-limited strict parse, depth guard. Only methods
 * that take a body are parsed; a body sent with GET or DELETE is ignored, as HTTP gives it no meaning.
 */
export function jsonBody(limit: string): RequestHandler[] {
  const parse = express.json({ limit, strict: true, type: JSON_TYPES });
  const parseWithBody: RequestHandler = (req, res, next) =>
    WITH_BODY.has(req.method) && !handledBodies.has(req) ? parse(req, res, next) : next();
  return [requireJson, parseWithBody, checkParsedBody];
}

/**
 * The body pipeline of `POST /api/v1/import`, mounted on that path before the general one: a JSON
 * document or NDJSON text (one export per line, parsed by the import itself so its errors can
 * name the line) up to `limit`, 415 for any other type. A missing body stays undefined.
 */
export function importBody(limit: string): RequestHandler[] {
  const json = express.json({ limit, strict: true, type: JSON_TYPES });
  const ndjson = express.text({ limit, type: NDJSON_TYPE });
  const parse: RequestHandler = (req, res, next) => {
    if (req.method !== 'POST') return next();
    handledBodies.add(req);
    if (!hasBody(req)) return next();
    if (req.is(NDJSON_TYPE)) return ndjson(req, res, next);
    if (isJson(req)) {
      return json(req, res, (error?: unknown) =>
        next(error ?? tooDeep(req.body, IMPORT_MAX_DEPTH)),
      );
    }
    const type = req.headers['content-type'] ?? 'none';
    next(
      new BodyProblem(
        415,
        `Unsupported Content-Type '${type}': send application/json or ${NDJSON_TYPE}.`,
      ),
    );
  };
  return [parse];
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
