import { Inject, Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import OpenAI, { APIConnectionError, APIError, APIUserAbortError, OpenAIError } from 'openai';
import type { Env } from '../config/env.validation';
import type { PromptMessage } from './prompt';

export interface CompletionRequest {
  model: string;
  messages: PromptMessage[];
  temperature?: number;
  max_tokens?: number;
}

export interface LlmUsage {
  prompt_tokens: number;
  completion_tokens: number;
}

export type LlmEvent =
  | { type: 'delta'; content: string }
  | {
      type: 'end';
      finish_reason: string | null;
      usage: LlmUsage | null;
      model: string | null;
    };

export type LlmErrorKind = 'refused' | 'http' | 'malformed' | 'aborted';

/** Why a completion failed; `message` is one line meant for `generation.error` (no key, no stack). */
export class LlmError extends Error {
  constructor(
    readonly kind: LlmErrorKind,
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'LlmError';
  }
}

export interface LlmClientOptions {
  /** LLM_BASE_URL; empty: not configured. */
  baseUrl: string;
  /** LLM_API_KEY; empty: no Authorization header. */
  apiKey?: string;
}

/** The longest delay setTimeout takes; beyond it Node fires after 1 ms instead. */
const NO_TIMEOUT_MS = 2_147_483_647;
const UPSTREAM_MESSAGE_MAX = 200;

/**
 * The SDK builds the message of an HTTP error from the body's `error` field only; vLLM and
 * FastAPI-style servers put it at the top level (`message`, `detail`), which would read as "(no body)".
 */
class UpstreamClient extends OpenAI {
  protected override makeStatusError(
    status: number,
    error: object,
    message: string | undefined,
    headers: Headers,
  ): APIError {
    return super.makeStatusError(status, error, message ?? describeBody(error), headers);
  }
}

function describeBody(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const { error, message, detail } = body as Record<string, unknown>;
  if (error !== undefined) return undefined; // the SDK reads it
  const found = message ?? detail;
  if (found === undefined) return JSON.stringify(body);
  return typeof found === 'string' ? found : JSON.stringify(found);
}

/**
 * Streams chat completions from the OpenAI-compatible server at LLM_BASE_URL. Every failure comes out
 * as an `LlmError`. A stream counts as malformed when an event is not JSON, a chunk is not shaped like
 * a `chat.completion.chunk`, the body is a JSON document instead of an event stream (a server that
 * ignored `stream: true`), or the stream ends without any `finish_reason` (the SDK swallows `[DONE]`,
 * so a finish_reason is the only sign of a complete answer it leaves us).
 */
@Injectable()
export class LlmClient {
  private readonly client: OpenAI | null;
  private readonly apiKey: string;

  constructor(@Inject(ConfigService) config: ConfigService<Env, true> | LlmClientOptions) {
    const options =
      config instanceof ConfigService
        ? {
            baseUrl: config.get('LLM_BASE_URL', { infer: true }),
            apiKey: config.get('LLM_API_KEY', { infer: true }),
          }
        : config;
    this.apiKey = options.apiKey ?? '';
    this.client =
      options.baseUrl === ''
        ? null
        : new UpstreamClient({
            baseURL: options.baseUrl,
            // The SDK insists on a key; without one, a null header removes the Authorization it adds.
            apiKey: this.apiKey || 'none',
            defaultHeaders: this.apiKey ? {} : { Authorization: null },
            // Explicit nulls: the SDK otherwise reads OPENAI_ORG_ID and OPENAI_PROJECT_ID.
            organization: null,
            project: null,
            // A retry would repeat a reply already partly streamed; the caller's signal is the timeout.
            maxRetries: 0,
            timeout: NO_TIMEOUT_MS,
            // The SDK logs a stream's undecodable data whole at error level; failures are ours to report.
            logLevel: 'off',
          });
  }

  get configured(): boolean {
    return this.client !== null;
  }

  async *stream(request: CompletionRequest, signal: AbortSignal): AsyncGenerator<LlmEvent> {
    if (!this.client) throw new LlmError('refused', 'no model server is configured (LLM_BASE_URL)');
    let finishReason: string | null | undefined;
    let usage: LlmUsage | null = null;
    let model: string | null = null;
    const client = this.client;
    const ask = () =>
      client.chat.completions
        .create(
          {
            model: request.model,
            messages: request.messages,
            stream: true,
            stream_options: { include_usage: true },
            ...(request.temperature !== undefined && { temperature: request.temperature }),
            ...(request.max_tokens !== undefined && { max_tokens: request.max_tokens }),
          },
          { signal },
        )
        .withResponse();
    try {
      // One retry, only when the connection failed before any answer: a kept-alive connection the
      // model server closed (Node's and uvicorn's servers close idle ones after 5 s) can be picked
      // just as it closes, and nothing of the reply has been sent. Seen under load by the bench:
      // "other side closed" with no request reaching the server.
      const { data: stream, response } = await ask().catch((error: unknown) => {
        if (error instanceof APIConnectionError && !(error instanceof APIUserAbortError)) {
          if (!signal.aborted) return ask();
        }
        throw error;
      });
      if (/^application\/(.+\+)?json\b/i.test(response.headers.get('content-type') ?? '')) {
        stream.controller.abort();
        throw new LlmError(
          'malformed',
          'the model server answered with a JSON document, not an event stream (does it support stream: true?)',
        );
      }
      for await (const chunk of stream as AsyncIterable<unknown>) {
        const parsed = readChunk(chunk);
        model = parsed.model ?? model;
        usage = parsed.usage ?? usage;
        if (parsed.finishReason !== undefined) finishReason = parsed.finishReason;
        if (parsed.content) yield { type: 'delta', content: parsed.content };
      }
    } catch (error) {
      throw this.failure(error, signal);
    }
    // The SDK ends an aborted stream quietly, as if it had finished.
    if (signal.aborted) throw this.failure(undefined, signal);
    if (finishReason === undefined) {
      throw new LlmError('malformed', 'the model server ended the stream without a finish_reason');
    }
    yield { type: 'end', finish_reason: finishReason, usage, model };
  }

  private failure(error: unknown, signal: AbortSignal): LlmError {
    if (error instanceof LlmError) return error;
    if (signal.aborted || error instanceof APIUserAbortError) {
      return new LlmError('aborted', 'the request to the model server was aborted');
    }
    if (error instanceof APIConnectionError) {
      return new LlmError(
        'refused',
        `could not reach the model server: ${this.clean(rootCause(error))}`,
      );
    }
    if (error instanceof APIError) {
      const { status } = error as APIError;
      const text = this.clean(error.message.replace(/^\d{3} /, ''), UPSTREAM_MESSAGE_MAX);
      // No status: an `{"error": …}` event inside a stream that had started with 200.
      return status === undefined
        ? new LlmError('http', `the model server reported an error: ${text}`)
        : new LlmError('http', `the model server answered ${status}: ${text}`, status);
    }
    if (error instanceof SyntaxError) {
      return new LlmError('malformed', 'the model server sent an event that is not JSON');
    }
    if (error instanceof OpenAIError) {
      return new LlmError(
        'malformed',
        `the model server's answer was unusable: ${this.clean(error.message)}`,
      );
    }
    // Fetch's body reader fails with `TypeError: terminated` (cause: "other side closed") when the
    // connection breaks after the headers.
    return new LlmError(
      'refused',
      `lost the connection to the model server: ${this.clean(rootCause(error))}`,
    );
  }

  /** One line, bounded, without the key or URL credentials. */
  private clean(text: string, max = UPSTREAM_MESSAGE_MAX): string {
    let line = text.replace(/\s+/g, ' ').trim();
    if (this.apiKey) line = line.split(this.apiKey).join('***');
    line = line.replace(/\/\/[^/\s@]*@/g, '//');
    return line.length > max ? `${line.slice(0, max - 1)}…` : line || 'no details';
  }
}

/**
 * The innermost message: fetch says "fetch failed", its cause says "connect ECONNREFUSED …". Duck-typed:
 * errors made inside undici may come from another realm (Jest's sandbox), where `instanceof` fails.
 */
function rootCause(error: unknown): string {
  const isError = (value: unknown): value is Error & { code?: unknown; errors?: unknown } =>
    typeof value === 'object' && value !== null && 'message' in value;
  let current: unknown = error;
  for (let depth = 0; depth < 5 && isError(current) && isError(current.cause); depth++) {
    current = current.cause;
  }
  // Connection attempts to several addresses: the first says enough.
  if (isError(current) && Array.isArray(current.errors) && isError(current.errors[0])) {
    current = current.errors[0];
  }
  if (!isError(current)) return String(current);
  const message = typeof current.message === 'string' ? current.message : '';
  return message || (typeof current.code === 'string' ? current.code : 'no details');
}

interface ParsedChunk {
  content: string;
  /** undefined: this chunk carries none. */
  finishReason?: string | null;
  usage: LlmUsage | null;
  model: string | null;
}

function readChunk(chunk: unknown): ParsedChunk {
  if (typeof chunk !== 'object' || chunk === null || Array.isArray(chunk)) {
    throw new LlmError(
      'malformed',
      'the model server sent an event that is not a completion chunk',
    );
  }
  const { choices, usage, model } = chunk as Record<string, unknown>;
  // A usage chunk has `choices: []`, or `choices: null` from vLLM.
  if (choices !== undefined && choices !== null && !Array.isArray(choices)) {
    throw new LlmError('malformed', 'the model server sent a chunk whose choices is not a list');
  }
  // One choice: `n` is never asked for.
  const first: unknown = Array.isArray(choices) ? choices[0] : undefined;
  const choice =
    typeof first === 'object' && first !== null ? (first as Record<string, unknown>) : {};
  const delta =
    typeof choice.delta === 'object' && choice.delta !== null
      ? (choice.delta as Record<string, unknown>)
      : {};
  const content = delta.content ?? '';
  if (typeof content !== 'string') {
    throw new LlmError('malformed', 'the model server sent a delta whose content is not text');
  }
  const reason = choice.finish_reason;
  return {
    content,
    finishReason: typeof reason === 'string' ? reason : undefined,
    usage: readUsage(usage),
    model: typeof model === 'string' && model !== '' ? model : null,
  };
}

function readUsage(usage: unknown): LlmUsage | null {
  if (typeof usage !== 'object' || usage === null) return null;
  const { prompt_tokens, completion_tokens } = usage as Record<string, unknown>;
  if (typeof prompt_tokens !== 'number' || typeof completion_tokens !== 'number') return null;
  return { prompt_tokens, completion_tokens };
}
