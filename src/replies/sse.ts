import { StreamableFile } from '@nestjs/common';
import type { Response } from 'express';
import { Readable } from 'node:stream';
import type { ChatMessage } from '../messages/chat-message.entity';
import type { ChatMessageDto } from '../messages/dto/chat-message.dto';
import type { ReplySource } from './replies.service';

/** A comment line goes out when nothing else has for this long (the contract: at most 15 s). */
export const KEEP_ALIVE_MS = 15_000;
/** Tells EventSource to reconnect after 1 s (it then sends Last-Event-ID); also flushes the headers. */
const RETRY = 'retry: 1000\n\n';

function event(name: string, data: unknown, id?: number): string {
  return `${id === undefined ? '' : `id: ${id}\n`}event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
}

/**
 * A reply as server-sent events: `message` first (when `first` is given: a new reply), then
 * `delta`s of the text after `offset`, each with `id:` = the text's length after it, then `done`
 * with the final message.
 *
 * Backpressure: the stream is pulled. A delta is made only when the client has taken the one
 * before, and carries all the text that arrived meanwhile, so a slow reader costs the server one
 * reply's text, which it keeps anyway, and no queue of deltas. A client that goes away ends the
 * stream (`signal`), never the reply.
 */
export async function* replyEvents(
  source: ReplySource,
  options: SseOptions,
  signal: AbortSignal,
): AsyncGenerator<string> {
  let changed = true;
  let wake: (() => void) | undefined;
  const unwatch = source.watch(() => {
    changed = true;
    wake?.();
  });
  const onAbort = () => wake?.();
  signal.addEventListener('abort', onAbort);
  try {
    yield options.first ? RETRY + event('message', options.map(options.first)) : RETRY;
    // The keep-alive counts from the last thing sent, not from the last wake-up: a stream read
    // from the database wakes every second with nothing new.
    let lastSent = Date.now();
    let sent = options.offset;
    while (!signal.aborted) {
      if (!changed) {
        const idle = KEEP_ALIVE_MS - (Date.now() - lastSent);
        if (idle <= 0) {
          lastSent = Date.now();
          yield ': keep-alive\n\n';
          continue;
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, idle);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = undefined;
        continue;
      }
      changed = false;
      const view = await source.view();
      let out = '';
      if (view.content.length > sent) {
        out += event('delta', { content: view.content.slice(sent) }, view.content.length);
        sent = view.content.length;
      }
      if (view.ended) {
        yield out + event('done', options.map(view.ended));
        return;
      }
      if (out) {
        lastSent = Date.now();
        yield out;
      }
    }
  } finally {
    unwatch();
    signal.removeEventListener('abort', onAbort);
  }
}

export interface SseOptions {
  offset: number;
  /** Ends the stream (without `done`) when the process shuts down. */
  shutdown: AbortSignal;
  first?: ChatMessage;
  map: (message: ChatMessage) => ChatMessageDto;
}

/**
 * The response body of a reply stream (see replyEvents), with its headers set on `res`: no
 * caching and no buffering by proxies (nginx reads X-Accel-Buffering); Nest pipes it to the client.
 */
export function sseResponse(
  res: Response,
  source: ReplySource,
  options: SseOptions,
): StreamableFile {
  const closed = new AbortController();
  res.on('close', () => closed.abort());
  const signal = AbortSignal.any([closed.signal, options.shutdown]);
  res.status(200).set({ 'Cache-Control': 'no-cache, no-transform', 'X-Accel-Buffering': 'no' });
  res.socket?.setNoDelay(true);
  const stream = Readable.from(replyEvents(source, options, signal), {
    objectMode: false,
    highWaterMark: 1,
  });
  return new StreamableFile(stream, { type: 'text/event-stream; charset=utf-8' });
}
