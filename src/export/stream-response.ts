import { Logger } from '@nestjs/common';
import type { Response } from 'express';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setImmediate } from 'node:timers/promises';
import type { ExportStream } from './export.service';

const logger = new Logger('Streaming');

/**
 * Sends a 200 whose body is produced as it is sent, with backpressure: the next chunk is produced
 * (and the next page read) only when the socket has taken the previous one.
 *
 * The first chunk is produced before anything is sent, so a failure there (the database down, say)
 * still becomes a problem document, without the headers meant for the body. A failure after the
 * first byte cannot any more: the connection is cut, so the client sees an incomplete response
 * rather than a short body that looks whole. `what` names the response in the log.
 */
export async function sendStream(
  res: Response,
  headers: Record<string, string>,
  chunks: AsyncIterable<string>,
  what: string,
): Promise<void> {
  const iterator = chunks[Symbol.asyncIterator]();
  const first = await iterator.next();
  res.status(200);
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  if (res.req.method === 'HEAD') {
    await iterator.return?.();
    res.end();
    return;
  }
  async function* all(): AsyncGenerator<string> {
    let next = first;
    try {
      while (!next.done) {
        yield next.value;
        // A socket that takes every write at once would otherwise let a whole body be produced in
        // one turn of the event loop (a second, for 100 MB), with every other request waiting.
        await setImmediate();
        next = await iterator.next();
      }
    } finally {
      // The client gone: the producer stops reading.
      if (!next.done) await iterator.return?.();
    }
  }
  try {
    // One chunk read ahead at most: memory per response stays at about a chunk.
    await pipeline(Readable.from(all(), { highWaterMark: 1 }), res);
  } catch (error) {
    res.destroy();
    const code = (error as { code?: string }).code;
    if (code === 'ERR_STREAM_PREMATURE_CLOSE') logger.warn(`${what} aborted by the client`);
    else
      logger.error(
        `${what} failed mid-stream: ${error instanceof Error ? error.stack : String(error)}`,
      );
  }
}

/** Sends an export as a download. */
export function sendExport(res: Response, stream: ExportStream): Promise<void> {
  return sendStream(
    res,
    {
      'Content-Type': stream.contentType,
      'Content-Disposition': `attachment; filename="${stream.filename}"`,
    },
    stream.chunks,
    'Export',
  );
}

/**
 * A JSON array written piece by piece, an item at a time: the bytes are exactly those of
 * `JSON.stringify(items.map(map))` for all the chunks' items together.
 */
export async function* jsonArray<T>(
  chunks: AsyncIterable<T[]>,
  map: (item: T) => unknown,
): AsyncGenerator<string> {
  let separator = '[';
  for await (const chunk of chunks) {
    for (const item of chunk) {
      yield separator + JSON.stringify(map(item));
      separator = ',';
    }
  }
  yield separator === '[' ? '[]' : ']';
}
