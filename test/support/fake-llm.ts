import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A fake OpenAI-compatible Chat Completions server on loopback, for tests and benches.
 *
 *   const fake = await startFakeLlm();      // fake.baseUrl = http://127.0.0.1:<port>/v1
 *   fake.next({ stream: ['Hel', 'lo'] });   // queue scripts, first in first out...
 *   fake.setDefault({ status: 500 });       // ...answered by the default one when none is queued
 *   fake.requests[0].body                   // everything sent to it, in order
 *   await fake.close();                     // ends every connection, hanging ones too
 *
 * Only `POST /v1/chat/completions` takes a script; other paths answer 404 (recorded all the same).
 * A script is one of:
 * - `{ stream: [...] }`: SSE `chat.completion.chunk` events. Strings become content deltas (after a
 *   role-only first delta unless `role: false`); a promise in the list is awaited first, so a test
 *   holds a reply in progress with `const gate = fake.gate(); fake.next({ stream: ['a', gate.wait, 'b'] })`
 *   then `gate.open()`. `delayMs` between chunks; then a chunk with `finishReason` (default 'stop',
 *   `null` for none); then a usage chunk when the request asked for it (`stream_options.include_usage`)
 *   or `usage` is given (`false`: never), with `choices: []`, or `choices: null` as vLLM sends with
 *   `usageChoices: 'null'`; then `data: [DONE]` unless `done: false`. `dropAfter: n` closes the
 *   socket after n content pieces. `model` overrides the request's model in the chunks.
 * - `{ status, body? }`: that status with a JSON body (default: an OpenAI-style error object), e.g. an
 *   HTTP error, or a 200 non-stream `chat.completion` where SSE was expected.
 * - `{ raw: [...] }`: SSE headers, then each string written as-is (`delayMs` apart), then the end:
 *   garbage lines, truncated JSON.
 * - `{ reset: true }` closes the connection before answering anything.
 * - `{ hang: 'headers' }` sends SSE headers then nothing; `{ hang: 'nothing' }` not even headers.
 *   Either lasts until the client goes away (or `close()`).
 * - a function of the recorded request returning (or resolving to) a script: echoes, or a gate
 *   before any answer at all.
 * Each recorded request tells whether the client went away before the answer ended (`aborted`), and
 * `closed` resolves when its connection is done either way; `openStreams` counts those not yet done.
 */

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens?: number;
}

export type Script =
  | {
      stream: ReadonlyArray<string | PromiseLike<unknown>>;
      delayMs?: number;
      role?: boolean;
      finishReason?: string | null;
      usage?: Usage | false;
      usageChoices?: 'empty' | 'null';
      done?: boolean;
      dropAfter?: number;
      model?: string;
    }
  | { status: number; body?: unknown }
  | { raw: readonly string[]; delayMs?: number }
  | { hang: 'headers' | 'nothing' }
  | { reset: true }
  | ((request: RecordedRequest) => Script | Promise<Script>);

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** The parsed JSON body, or the raw text when it was not JSON. */
  body: unknown;
  /** True when the client closed the connection before the answer ended. */
  aborted: boolean;
  /** Resolves when the connection is done, ended by either side. */
  closed: Promise<void>;
}

export interface Gate {
  /** A promise to put in a stream script (or await in a function script). */
  wait: Promise<void>;
  open(): void;
}

export interface FakeLlm {
  /** `http://127.0.0.1:<port>/v1`, what LLM_BASE_URL is set to. */
  baseUrl: string;
  requests: RecordedRequest[];
  /** Requests whose connection is still open. */
  readonly openStreams: number;
  next(script: Script): void;
  setDefault(script: Script): void;
  gate(): Gate;
  /** Resolves once `count` requests have arrived (their scripts may still be running). */
  receivedRequests(count: number): Promise<void>;
  close(): Promise<void>;
}

const DEFAULT_SCRIPT: Script = { stream: ['Hello', ' from', ' the fake'] };

/** One `chat.completion.chunk` as OpenAI streams it. */
export function completionChunk(
  model: string,
  delta: { role?: string; content?: string },
  finishReason: string | null = null,
): object {
  return {
    id: 'chatcmpl-fake',
    object: 'chat.completion.chunk',
    created: 1_700_000_000,
    model,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
  };
}

/** The last chunk of a stream asked for with `stream_options.include_usage`. */
export function usageChunk(
  model: string,
  usage: Usage,
  choices: 'empty' | 'null' = 'empty',
): object {
  return {
    id: 'chatcmpl-fake',
    object: 'chat.completion.chunk',
    created: 1_700_000_000,
    model,
    choices: choices === 'null' ? null : [],
    usage: { total_tokens: usage.prompt_tokens + usage.completion_tokens, ...usage },
  };
}

/** A non-streaming `chat.completion`, for servers that ignore `stream: true`. */
export function completion(model: string, content: string): object {
  return {
    id: 'chatcmpl-fake',
    object: 'chat.completion',
    created: 1_700_000_000,
    model,
    choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
  };
}

export function sseEvent(data: object | string): string {
  return `data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`;
}

function errorBody(status: number): object {
  return {
    error: { message: `fake error ${status}`, type: 'server_error', param: null, code: null },
  };
}

function sseHeaders(res: ServerResponse): void {
  res.writeHead(200, {
    'Content-Type': 'text/event-stream',
    'Cache-Control': 'no-cache',
    Connection: 'keep-alive',
  });
  res.flushHeaders();
}

function bodyOf(request: RecordedRequest): Record<string, unknown> {
  return typeof request.body === 'object' && request.body !== null
    ? (request.body as Record<string, unknown>)
    : {};
}

async function play(
  script: Script,
  request: RecordedRequest,
  res: ServerResponse,
  drop: () => void,
): Promise<void> {
  const gone = () => res.destroyed || res.writableEnded;
  if (typeof script === 'function') return play(await script(request), request, res, drop);
  if ('reset' in script) {
    drop(); // the connection closes before any answer, as a kept-alive one closing under a request
    return;
  }
  if ('hang' in script) {
    if (script.hang === 'headers') sseHeaders(res);
    return; // until the client or close() ends the connection
  }
  if ('status' in script) {
    res.writeHead(script.status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(script.body ?? errorBody(script.status)));
    return;
  }
  sseHeaders(res);
  if ('raw' in script) {
    for (const text of script.raw) {
      if (script.delayMs) await sleep(script.delayMs);
      if (gone()) return;
      res.write(text);
    }
    res.end();
    return;
  }
  const body = bodyOf(request);
  const model = script.model ?? (typeof body.model === 'string' ? body.model : 'fake-model');
  const pause = () => (script.delayMs ? sleep(script.delayMs) : Promise.resolve());
  if (script.role !== false) res.write(sseEvent(completionChunk(model, { role: 'assistant' })));
  let pieces = 0;
  for (const step of script.stream) {
    if (typeof step !== 'string') {
      await step;
      if (gone()) return;
      continue;
    }
    await pause();
    if (gone()) return;
    if (script.dropAfter !== undefined && pieces >= script.dropAfter) {
      drop();
      return;
    }
    res.write(sseEvent(completionChunk(model, { content: step })));
    pieces++;
  }
  if (script.dropAfter !== undefined && pieces >= script.dropAfter) {
    res.socket?.destroy();
    return;
  }
  await pause();
  if (gone()) return;
  const finishReason = script.finishReason === undefined ? 'stop' : script.finishReason;
  if (finishReason !== null) res.write(sseEvent(completionChunk(model, {}, finishReason)));
  const options = body.stream_options as { include_usage?: unknown } | undefined;
  if (script.usage !== false && (script.usage || options?.include_usage === true)) {
    const usage = script.usage || { prompt_tokens: 10, completion_tokens: pieces };
    res.write(sseEvent(usageChunk(model, usage, script.usageChoices)));
  }
  if (script.done !== false) res.write(sseEvent('[DONE]'));
  res.end();
}

export async function startFakeLlm(): Promise<FakeLlm> {
  const queue: Script[] = [];
  let fallback: Script = DEFAULT_SCRIPT;
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();
  const arrivals: Array<{ count: number; resolve: () => void }> = [];
  let open = 0;

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // kept as text
      }
      let markClosed = () => {};
      let dropped = false;
      const request: RecordedRequest = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        body,
        aborted: false,
        closed: new Promise((resolve) => (markClosed = resolve)),
      };
      requests.push(request);
      open++;
      const drop = () => {
        dropped = true;
        // end(), not destroy(): what was written still goes out before the connection closes.
        res.socket?.end();
      };
      res.on('close', () => {
        open--;
        request.aborted = !res.writableFinished && !dropped;
        markClosed();
      });
      for (const waiter of arrivals.filter((a) => requests.length >= a.count)) {
        arrivals.splice(arrivals.indexOf(waiter), 1);
        waiter.resolve();
      }
      if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
        void play({ status: 404 }, request, res, drop);
        return;
      }
      play(queue.shift() ?? fallback, request, res, drop).catch((error: unknown) => {
        // A script that throws is a broken test: say so on the wire and in the output.
        console.error('fake-llm script failed:', error);
        res.destroy();
      });
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    get openStreams() {
      return open;
    },
    next: (script) => void queue.push(script),
    setDefault: (script) => void (fallback = script),
    gate() {
      let release = () => {};
      const wait = new Promise<void>((resolve) => (release = resolve));
      return { wait, open: () => release() };
    },
    receivedRequests(count) {
      if (requests.length >= count) return Promise.resolve();
      return new Promise((resolve) => arrivals.push({ count, resolve }));
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}
