import {
  BadRequestException,
  CallHandler,
  ExecutionContext,
  HttpException,
  HttpStatus,
  RequestTimeoutException,
  Injectable,
  NestInterceptor,
  UnsupportedMediaTypeException,
} from '@nestjs/common';
import type { Request, Response } from 'express';
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import zlib from 'node:zlib';
import { finalize, Observable } from 'rxjs';
import { IMPORT_BODY_LIMIT } from '../app.setup';
import type { OwnedRequest } from '../auth/owner.decorator';
import {
  hasBody,
  JSON_TYPES,
  NDJSON_TYPE,
  tooLarge,
  unsupportedType,
} from '../common/http/body-parsing';
import type { ImportBody } from './import-file';

/** Imports one owner may run at once in a process; another one meanwhile gets a 429. */
export const IMPORTS_PER_OWNER = 1;
/** Imports a process runs at once (each may hold up to 50 MiB and a long transaction); then 503. */
export const IMPORTS_PER_PROCESS = 2;
/** An import body that sends nothing for this long is cut off, freeing its slot. */
export const IMPORT_IDLE_MS = 15_000;
/** What Retry-After says when an import is refused for being one too many: about one import's time. */
export const IMPORT_RETRY_AFTER_S = 10;

const IDEMPOTENCY_HEADER = 'idempotency-key';
const ENCODINGS = new Set(['identity', 'gzip', 'x-gzip', 'deflate', 'br']);

export interface ImportRequest extends OwnedRequest {
  importBody?: ImportBody;
}

function tooManyImports(res: Response, status: HttpStatus, detail: string): HttpException {
  res.setHeader('Retry-After', IMPORT_RETRY_AFTER_S);
  return new HttpException(detail, status);
}

/**
 * The import route's intake, run after the guards (the caller is known and within its rate limit)
 * and before idempotency: limits concurrent imports (per owner, then per process), checks the body's
 * type and encoding without reading it, and hands the handler the body as a stream of bytes, which
 * the import parses as it arrives (readImportFile).
 *
 * A request with an `Idempotency-Key` is the one exception: its body is read (not parsed) first, up
 * to the limit, because the idempotency check that runs next compares request bodies, and only a
 * digest of the bytes is kept as `req.body` for it to compare.
 */
@Injectable()
export class ImportIntakeInterceptor implements NestInterceptor {
  private running = 0;
  private readonly perOwner = new Map<string, number>();

  async intercept(context: ExecutionContext, next: CallHandler): Promise<Observable<unknown>> {
    const req = context.switchToHttp().getRequest<ImportRequest>();
    const res = context.switchToHttp().getResponse<Response>();
    const owner = req.owner ?? '';
    const mine = this.perOwner.get(owner) ?? 0;
    if (mine >= IMPORTS_PER_OWNER) {
      throw tooManyImports(
        res,
        HttpStatus.TOO_MANY_REQUESTS,
        `Another import of yours is still running (at most ${IMPORTS_PER_OWNER} at a time); retry when it has finished.`,
      );
    }
    if (this.running >= IMPORTS_PER_PROCESS) {
      throw tooManyImports(
        res,
        HttpStatus.SERVICE_UNAVAILABLE,
        `The server is running ${IMPORTS_PER_PROCESS} imports already; retry shortly.`,
      );
    }
    this.running++;
    this.perOwner.set(owner, mine + 1);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.running--;
      const left = (this.perOwner.get(owner) ?? 1) - 1;
      if (left > 0) this.perOwner.set(owner, left);
      else this.perOwner.delete(owner);
    };
    try {
      req.importBody = await importBodyOf(req);
    } catch (error) {
      release();
      throw error;
    }
    return next.handle().pipe(finalize(release));
  }
}

/** The request's import file, checked for type and encoding; read at once only for idempotency. */
async function importBodyOf(req: ImportRequest): Promise<ImportBody> {
  if (!hasBody(req)) return { format: 'json', bytes: [] };
  const format = req.is(NDJSON_TYPE) ? 'ndjson' : req.is(JSON_TYPES) ? 'json' : undefined;
  if (format === undefined) {
    throw unsupportedType(req, `application/json or ${NDJSON_TYPE}`);
  }
  const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(req.headers['content-type'] ?? '')?.[1];
  if (charset !== undefined && !/^utf-?8$/i.test(charset)) {
    throw new UnsupportedMediaTypeException(`Unsupported charset '${charset}': send UTF-8.`);
  }
  const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  if (!ENCODINGS.has(encoding)) {
    throw new UnsupportedMediaTypeException(
      `Unsupported Content-Encoding '${encoding}': send gzip, deflate, br or identity.`,
    );
  }
  const length = Number(req.headers['content-length']);
  if (encoding === 'identity' && length > IMPORT_BODY_LIMIT) throw tooLarge(IMPORT_BODY_LIMIT);

  const bytes = bodyBytes(req, encoding, IMPORT_BODY_LIMIT);
  if (req.headers[IDEMPOTENCY_HEADER] === undefined) return { format, bytes };
  const chunks: Buffer[] = [];
  const digest = createHash('sha256').update(`${format}\n`);
  for await (const chunk of bytes) {
    digest.update(chunk);
    chunks.push(chunk);
  }
  req.body = `sha256:${digest.digest('hex')}`;
  return { format, bytes: chunks };
}

function decoderFor(encoding: string): zlib.Gunzip | zlib.Inflate | zlib.BrotliDecompress | null {
  if (encoding === 'gzip' || encoding === 'x-gzip') return zlib.createGunzip();
  if (encoding === 'deflate') return zlib.createInflate();
  if (encoding === 'br') return zlib.createBrotliDecompress();
  return null;
}

/**
 * The body's bytes as they arrive, any Content-Encoding undone, failing with a 413 as soon as more
 * than `limit` bytes have come out. Whoever stops early (the limit, a fatal parse error) leaves the
 * rest unread: the request is paused, not destroyed, so the answer can still be sent (with
 * `Connection: close`, see closeIfBodyUnread).
 */
export async function* bodyBytes(
  req: Request,
  encoding: string,
  limit: number,
): AsyncGenerator<Buffer> {
  const decoder = decoderFor(encoding);
  const source: Readable = decoder ? req.pipe(decoder) : req;
  let total = 0;
  // An upload that stops sending would hold its import slot (and the owner's) until Node's own
  // request timeout, minutes later: after IMPORT_IDLE_MS without a byte the connection is cut.
  // Only time spent waiting for bytes counts, not time the import spends on what it has read.
  let idle = false;
  let waitingSince: number | null = null;
  const timer = setInterval(() => {
    if (waitingSince === null || Date.now() - waitingSince < IMPORT_IDLE_MS) return;
    idle = true;
    source.destroy(new Error('idle upload'));
    if (source !== req) req.destroy();
  }, 1000);
  timer.unref();
  const chunks = (source.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>)[
    Symbol.asyncIterator
  ]();
  try {
    for (;;) {
      waitingSince = Date.now();
      const next = await chunks.next();
      waitingSince = null;
      if (next.done) break;
      const chunk = next.value;
      total += chunk.length;
      if (total > limit) throw tooLarge(limit);
      yield chunk;
    }
  } catch (error) {
    if (error instanceof HttpException) throw error;
    if (idle) {
      throw new RequestTimeoutException(
        `The request body stopped arriving for ${IMPORT_IDLE_MS / 1000} s.`,
      );
    }
    if (req.readableAborted || (error as NodeJS.ErrnoException).code === 'ECONNRESET') {
      throw new BadRequestException('The request body was cut off before its end.');
    }
    if (decoder && (error as NodeJS.ErrnoException).code?.startsWith('Z_')) {
      throw new BadRequestException(`The request body is not valid ${encoding} data.`);
    }
    throw error;
  } finally {
    clearInterval(timer);
    if (decoder) {
      req.unpipe(decoder);
      decoder.destroy();
    }
    if (!req.complete) req.pause();
  }
}
