import {
  BadRequestException,
  CanActivate,
  ExecutionContext,
  HttpException,
  Injectable,
  PayloadTooLargeException,
  SetMetadata,
  UnsupportedMediaTypeException,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import express, { Request, RequestHandler, Response } from 'express';
import { jsonDepth } from '../fields/json-bounds';
import type { FieldError } from '../problems/problem';
import { ValidationProblemException } from '../problems/validation.pipe';

/** The largest JSON body a route takes (imports read theirs themselves, with their own limit). */
export const BODY_LIMIT = '1mb';
/** Deeper bodies are refused before any code walks them (the contract's deepest field is 17 levels). */
export const BODY_MAX_DEPTH = 32;
/** Import files nest deeper: an array of exports, each with messages and their 16-level metadata. */
export const IMPORT_MAX_DEPTH = 64;
const WITH_BODY = new Set(['POST', 'PUT', 'PATCH']);
export const JSON_TYPES = ['application/json', 'application/*+json'];
export const NDJSON_TYPE = 'application/x-ndjson';

const READS_OWN_BODY = 'readsOwnBody';

/**
 * Marks a route that reads its request body itself (as a stream): the general JSON pipeline leaves
 * the body unread for it.
 */
export const ReadsOwnBody = (): MethodDecorator & ClassDecorator =>
  SetMetadata(READS_OWN_BODY, true);

/** True when the request announces a body (a Content-Length above 0, or chunked framing). */
export function hasBody(req: Request): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

export function unsupportedType(req: Request, accepted: string): HttpException {
  const type = req.headers['content-type'] ?? 'none';
  return new UnsupportedMediaTypeException(`Unsupported Content-Type '${type}': send ${accepted}.`);
}

export function tooLarge(limit: number): HttpException {
  return new PayloadTooLargeException(`Request body exceeds the ${limit} byte limit.`);
}

/** The longest key a field path quotes whole; longer ones are cut, as a key may be megabytes long. */
const PATH_KEY_MAX = 64;
const PLAIN_KEY = /^[A-Za-z_$][\w$-]*$/;

/**
 * A place in a JSON value written as the problem documents name fields (`metadata.a[3]["b c"]`);
 * the empty path is `body`.
 */
export function fieldPath(segments: readonly (string | number)[]): string {
  let path = '';
  for (const segment of segments) {
    if (typeof segment === 'number') {
      path += `[${segment}]`;
      continue;
    }
    let key = segment.length > PATH_KEY_MAX ? `${segment.slice(0, PATH_KEY_MAX)}…` : segment;
    // A cut that splits a surrogate pair would leave half of it, which is not text.
    key = key.replace(/[\uD800-\uDBFF]…$/, '…');
    if (PLAIN_KEY.test(key)) path += path ? `.${key}` : key;
    else path += `[${JSON.stringify(key)}]`;
  }
  return path || 'body';
}

/**
 * The path to the first container (in document order) that sits more than `maxDepth` levels deep
 * in `value`, or null when there is none. Walked without recursion, like jsonDepth.
 */
export function tooDeepPath(value: unknown, maxDepth: number): (string | number)[] | null {
  interface Frame {
    node: object;
    depth: number;
    key: string | number;
    parent: Frame | null;
  }
  if (value === null || typeof value !== 'object') return null;
  const stack: Frame[] = [{ node: value, depth: 1, key: '', parent: null }];
  while (stack.length > 0) {
    const frame = stack.pop()!;
    if (frame.depth > maxDepth) {
      const path: (string | number)[] = [];
      for (let f: Frame | null = frame; f?.parent; f = f.parent) path.push(f.key);
      return path.reverse();
    }
    const children: [string | number, unknown][] = Array.isArray(frame.node)
      ? frame.node.map((child: unknown, i) => [i, child])
      : Object.entries(frame.node);
    // Pushed last to first, so the first child is walked first.
    for (let i = children.length - 1; i >= 0; i--) {
      const [key, child] = children[i];
      if (child !== null && typeof child === 'object') {
        stack.push({ node: child, depth: frame.depth + 1, key, parent: frame });
      }
    }
  }
  return null;
}

/** The field error of a value nested deeper than a body may nest; `field` names where. */
export function tooDeepProblem(maxDepth: number, field: string): FieldError {
  return { field, message: `${field} is nested more than ${maxDepth} levels deep` };
}

/** A body nested too deep: the 400 of any other invalid field, naming where the limit is passed. */
export function tooDeep(maxDepth: number, field: string): HttpException {
  return new ValidationProblemException([tooDeepProblem(maxDepth, field)]);
}

interface ParserError {
  status?: number;
  statusCode?: number;
  type?: string;
  expose?: boolean;
  message?: string;
  limit?: number;
}

/** body-parser's errors as the problem documents the contract gives them; anything else is a 500. */
function bodyProblem(error: ParserError & Error): Error {
  const status = error.status ?? error.statusCode ?? 500;
  if (error.type === 'entity.parse.failed') {
    return new BadRequestException('Malformed JSON in request body.');
  }
  if (error.type === 'entity.too.large') return tooLarge(error.limit ?? 0);
  if (status >= 400 && status < 500 && error.expose) {
    return new HttpException(error.message ?? 'Bad request.', status);
  }
  return error;
}

/**
 * Parses JSON request bodies after authentication and the rate limit, so nothing a caller sends is
 * read, inflated or parsed before it is known and within its budget (body parsing as express
 * middleware runs before every guard). It is the last global guard (registered after them in
 * AuthModule) rather than an interceptor: Nest runs every interceptor through an rxjs pipeline and
 * binds an AsyncResource per request, which the CPU profile showed on every GET, where there is no
 * body to parse; guards cost a function call. Idempotency, a route interceptor, hashes the parsed
 * body.
 *
 * Content-type check (415), size-limited strict parse (413 / 400), depth guard (400). A missing body
 * reads as `{}`. Only methods that take a body are parsed; a body sent with GET or DELETE is
 * ignored, as HTTP gives it no meaning. Routes marked `@ReadsOwnBody()` read theirs themselves.
 */
@Injectable()
export class BodyParsingGuard implements CanActivate {
  private readonly parse: RequestHandler = express.json({
    limit: BODY_LIMIT,
    strict: true,
    type: JSON_TYPES,
  });

  constructor(private readonly reflector: Reflector) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (context.getType() !== 'http') return true;
    const http = context.switchToHttp();
    const req = http.getRequest<Request>();
    if (!WITH_BODY.has(req.method)) return true;
    const ownBody = this.reflector.getAllAndOverride<boolean | undefined>(READS_OWN_BODY, [
      context.getHandler(),
      context.getClass(),
    ]);
    if (!ownBody) await this.parseJson(req, http.getResponse());
    return true;
  }

  private async parseJson(req: Request, res: Response): Promise<void> {
    if (hasBody(req) && !req.is(JSON_TYPES)) throw unsupportedType(req, 'application/json');
    await new Promise<void>((resolve, reject) =>
      this.parse(req, res, (error?: unknown) =>
        error ? reject(bodyProblem(error as ParserError & Error)) : resolve(),
      ),
    );
    if (req.body === undefined) req.body = {};
    // The path is looked for only once the (cheaper) depth check has failed.
    if (jsonDepth(req.body, BODY_MAX_DEPTH) > BODY_MAX_DEPTH) {
      throw tooDeep(BODY_MAX_DEPTH, fieldPath(tooDeepPath(req.body, BODY_MAX_DEPTH) ?? []));
    }
  }
}

/**
 * A response sent while the request's body is still arriving (a 401, 429, 404 or 413 answered
 * without reading it) closes the connection: keeping it alive would make Node read and discard
 * the rest of the body first, which is the work the early answer avoids.
 */
export const closeIfBodyUnread: RequestHandler = (req, res, next) => {
  if (!hasBody(req)) {
    next();
    return;
  }
  const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => Response;
  res.writeHead = ((...args: unknown[]) => {
    if (!req.complete && !res.headersSent) res.setHeader('Connection', 'close');
    return writeHead(...args);
  }) as Response['writeHead'];
  next();
};
