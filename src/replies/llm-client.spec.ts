import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { ConfigService } from '@nestjs/config';
import { type Env, validateEnv } from '../config/env.validation';
import {
  completion,
  completionChunk,
  type FakeLlm,
  sseEvent,
  startFakeLlm,
} from '../../test/support/fake-llm';
import { type CompletionRequest, LlmClient, LlmError, type LlmEvent } from './llm-client';

const KEY = 'sk-secret-key-123';
const REQUEST: CompletionRequest = {
  model: 'test-model',
  messages: [
    { role: 'system', content: 'be brief' },
    { role: 'user', content: 'hi' },
  ],
};

async function run(
  client: LlmClient,
  signal: AbortSignal = new AbortController().signal,
  request: CompletionRequest = REQUEST,
): Promise<{ events: LlmEvent[]; error?: LlmError }> {
  const events: LlmEvent[] = [];
  try {
    for await (const event of client.stream(request, signal)) events.push(event);
  } catch (error) {
    if (!(error instanceof LlmError)) throw error;
    return { events, error };
  }
  return { events };
}

const deltas = (events: LlmEvent[]) =>
  events.flatMap((e) => (e.type === 'delta' ? [e.content] : []));

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('LlmClient', () => {
  let fake: FakeLlm;
  let client: LlmClient;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);

  beforeAll(async () => {
    process.on('unhandledRejection', onUnhandled);
    fake = await startFakeLlm();
  });
  beforeEach(() => {
    fake.requests.length = 0;
    client = new LlmClient({ baseUrl: fake.baseUrl, apiKey: KEY });
  });
  afterEach(() => expect(unhandled).toEqual([]));
  afterAll(async () => {
    await fake.close();
    process.off('unhandledRejection', onUnhandled);
  });

  it('is configured by a base URL', () => {
    expect(client.configured).toBe(true);
    expect(new LlmClient({ baseUrl: '' }).configured).toBe(false);
    expect(new LlmClient(new ConfigService<Env, true>(validateEnv({}))).configured).toBe(false);
  });

  it('reads LLM_BASE_URL and LLM_API_KEY from the configuration', async () => {
    const env = validateEnv({ LLM_BASE_URL: fake.baseUrl, LLM_API_KEY: 'sk-from-env' });
    fake.next({ stream: ['x'] });
    const { error } = await run(new LlmClient(new ConfigService<Env, true>(env)));
    expect(error).toBeUndefined();
    expect(fake.requests[0].headers.authorization).toBe('Bearer sk-from-env');
  });

  describe('a stream that finishes', () => {
    it('yields the content deltas in order, then one end with finish_reason, usage and model', async () => {
      fake.next({ stream: ['Hel', 'lo', ', ', 'world'] });
      const { events, error } = await run(client);
      expect(error).toBeUndefined();
      expect(events).toEqual([
        { type: 'delta', content: 'Hel' },
        { type: 'delta', content: 'lo' },
        { type: 'delta', content: ', ' },
        { type: 'delta', content: 'world' },
        {
          type: 'end',
          finish_reason: 'stop',
          usage: { prompt_tokens: 10, completion_tokens: 4 },
          model: 'test-model',
        },
      ]);
    });

    it('ignores role-only and empty deltas, and choices without a delta', async () => {
      const m = 'test-model';
      fake.next({
        raw: [
          sseEvent(completionChunk(m, { role: 'assistant' })),
          sseEvent(completionChunk(m, { role: 'assistant', content: '' })),
          sseEvent(completionChunk(m, {})),
          sseEvent(completionChunk(m, { content: 'a' })),
          sseEvent({ id: 'x', object: 'chat.completion.chunk', model: m, choices: [{ index: 0 }] }),
          sseEvent({ id: 'x', object: 'chat.completion.chunk', model: m, choices: [] }),
          ': a comment line\n\n',
          sseEvent(completionChunk(m, { content: null } as unknown as { content: string })),
          sseEvent(completionChunk(m, { content: 'b' })),
          sseEvent(completionChunk(m, {}, 'stop')),
          sseEvent('[DONE]'),
        ],
      });
      const { events, error } = await run(client);
      expect(error).toBeUndefined();
      expect(deltas(events)).toEqual(['a', 'b']);
      expect(events).toHaveLength(3);
      expect(events.at(-1)).toEqual({
        type: 'end',
        finish_reason: 'stop',
        usage: null,
        model: 'test-model',
      });
    });

    it('reads the usage chunk with choices: [] (OpenAI)', async () => {
      fake.next({ stream: ['x'], usage: { prompt_tokens: 7, completion_tokens: 3 } });
      const { events } = await run(client);
      expect(events.at(-1)).toMatchObject({ usage: { prompt_tokens: 7, completion_tokens: 3 } });
    });

    it('reads the usage chunk with choices: null (vLLM)', async () => {
      fake.next({
        stream: ['x', 'y'],
        usage: { prompt_tokens: 12, completion_tokens: 2 },
        usageChoices: 'null',
      });
      const { events, error } = await run(client);
      expect(error).toBeUndefined();
      expect(deltas(events)).toEqual(['x', 'y']);
      expect(events.at(-1)).toEqual({
        type: 'end',
        finish_reason: 'stop',
        usage: { prompt_tokens: 12, completion_tokens: 2 },
        model: 'test-model',
      });
    });

    it('reports no usage when the server sends none', async () => {
      fake.next({ stream: ['x'], usage: false });
      const { events } = await run(client);
      expect(events.at(-1)).toMatchObject({ type: 'end', usage: null });
    });

    it('reports the model the server names, and the finish_reason it gives', async () => {
      fake.next({ stream: ['x'], model: 'llama3:8b-instruct-q4', finishReason: 'length' });
      const { events } = await run(client);
      expect(events.at(-1)).toMatchObject({
        type: 'end',
        finish_reason: 'length',
        model: 'llama3:8b-instruct-q4',
      });
    });

    it('accepts a stream that ends after its finish_reason without [DONE]', async () => {
      fake.next({ stream: ['x'], done: false });
      const { events, error } = await run(client);
      expect(error).toBeUndefined();
      expect(events.at(-1)).toMatchObject({ type: 'end', finish_reason: 'stop' });
    });

    it('yields deltas as they arrive, not at the end', async () => {
      const gate = fake.gate();
      fake.next({ stream: ['first', gate.wait, 'second'] });
      const iterator = client.stream(REQUEST, new AbortController().signal);
      await expect(iterator.next()).resolves.toEqual({
        done: false,
        value: { type: 'delta', content: 'first' },
      });
      gate.open();
      const rest: LlmEvent[] = [];
      for await (const event of iterator) rest.push(event);
      expect(deltas(rest)).toEqual(['second']);
    });
  });

  describe('the request', () => {
    it('posts the model, messages, stream and stream_options, and nothing else unasked', async () => {
      fake.next({ stream: ['x'] });
      await run(client);
      expect(fake.requests).toHaveLength(1);
      const [sent] = fake.requests;
      expect(sent.method).toBe('POST');
      expect(sent.path).toBe('/v1/chat/completions');
      expect(sent.headers['content-type']).toMatch(/^application\/json/);
      expect(sent.body).toEqual({
        model: 'test-model',
        messages: REQUEST.messages,
        stream: true,
        stream_options: { include_usage: true },
      });
    });

    it('sends temperature and max_tokens when given, 0 included', async () => {
      fake.next({ stream: ['x'] });
      await run(client, undefined, { ...REQUEST, temperature: 0, max_tokens: 64 });
      expect(fake.requests[0].body).toMatchObject({ temperature: 0, max_tokens: 64 });
    });

    it('gets what a function script derives from the request (an echo)', async () => {
      fake.next((request) => {
        const { messages } = request.body as { messages: Array<{ content: string }> };
        return { stream: [`echo: ${messages.at(-1)?.content}`] };
      });
      const { events } = await run(client);
      expect(deltas(events)).toEqual(['echo: hi']);
    });

    it('sends the key as a Bearer token', async () => {
      fake.next({ stream: ['x'] });
      await run(client);
      expect(fake.requests[0].headers.authorization).toBe(`Bearer ${KEY}`);
    });

    it('sends no Authorization header at all without a key', async () => {
      fake.next({ stream: ['x'] });
      const { error } = await run(new LlmClient({ baseUrl: fake.baseUrl, apiKey: '' }));
      expect(error).toBeUndefined();
      expect(fake.requests[0].headers).not.toHaveProperty('authorization');
      expect(fake.requests[0].headers).not.toHaveProperty('openai-organization');
      expect(fake.requests[0].headers).not.toHaveProperty('openai-project');
    });

    it('does not retry', async () => {
      // A retry would get the default script's answer.
      fake.next({ status: 503 });
      const { error } = await run(client);
      expect(error).toMatchObject({ kind: 'http', status: 503 });
      expect(fake.requests).toHaveLength(1);
    });
  });

  describe('failures', () => {
    it.each([
      [500, 'fake error 500'],
      [401, 'fake error 401'],
      [404, 'fake error 404'],
    ])('HTTP %i → http with the status and the upstream message', async (status, text) => {
      fake.next({ status });
      const { events, error } = await run(client);
      expect(events).toEqual([]);
      expect(error).toBeInstanceOf(LlmError);
      expect(error).toMatchObject({
        kind: 'http',
        status,
        message: `the model server answered ${status}: ${text}`,
      });
    });

    it('keeps an HTTP error message to one bounded line without the key', async () => {
      const upstream = `invalid key ${KEY}\nsee https://user:pw@example.test/docs ${'x'.repeat(400)}`;
      fake.next({ status: 401, body: { error: { message: upstream } } });
      const { error } = await run(client);
      expect(error?.kind).toBe('http');
      expect(error?.message).not.toContain(KEY);
      expect(error?.message).not.toContain('user:pw');
      expect(error?.message).not.toMatch(/\n/);
      expect(error?.message.length).toBeLessThan(260);
      expect(error?.message).toMatch(/^the model server answered 401: invalid key \*\*\* see /);
    });

    it('reads the message of an error body without an error field (vLLM, FastAPI)', async () => {
      fake.next({ status: 400, body: { object: 'error', message: 'max_tokens is too large' } });
      expect((await run(client)).error).toMatchObject({
        kind: 'http',
        status: 400,
        message: 'the model server answered 400: max_tokens is too large',
      });
      fake.next({ status: 422, body: { detail: [{ msg: 'field required' }] } });
      expect((await run(client)).error?.message).toBe(
        'the model server answered 422: [{"msg":"field required"}]',
      );
    });

    it('an error event inside a stream → http without status, the text before it kept', async () => {
      fake.next({
        raw: [
          sseEvent(completionChunk('m', { content: 'partial' })),
          sseEvent({ error: { message: 'model overloaded' } }),
        ],
      });
      const { events, error } = await run(client);
      expect(deltas(events)).toEqual(['partial']);
      expect(error).toMatchObject({
        kind: 'http',
        status: undefined,
        message: 'the model server reported an error: model overloaded',
      });
    });

    it.each([
      ['a garbage line', ['data: this is not json\n\n']],
      ['truncated JSON', [`data: {"id":"x","choices":[{"delta":{"content":"a"`]],
      ['a chunk that is not an object', ['data: 42\n\n']],
      ['choices that is not a list', ['data: {"choices":"a"}\n\n']],
      ['content that is not text', ['data: {"choices":[{"delta":{"content":7}}]}\n\n']],
      ['no events at all', ['hello\n', 'world\n']],
      [
        '[DONE] without any finish_reason',
        [sseEvent(completionChunk('m', { content: 'a' })), sseEvent('[DONE]')],
      ],
    ])('%s → malformed', async (_, raw) => {
      fake.next({ raw });
      const { events, error } = await run(client);
      expect(error).toBeInstanceOf(LlmError);
      expect(error?.kind).toBe('malformed');
      expect(error?.message).not.toMatch(/\n/);
      expect(events.every((e) => e.type === 'delta')).toBe(true);
    });

    it('a stream that ends without finish_reason or [DONE] → malformed, deltas kept', async () => {
      fake.next({ stream: ['a', 'b'], finishReason: null, usage: false, done: false });
      const { events, error } = await run(client);
      expect(deltas(events)).toEqual(['a', 'b']);
      expect(error).toMatchObject({
        kind: 'malformed',
        message: 'the model server ended the stream without a finish_reason',
      });
    });

    it('a JSON completion where a stream was asked for → malformed, without reading it', async () => {
      fake.next({ status: 200, body: completion('m', 'whole answer') });
      const { events, error } = await run(client);
      expect(events).toEqual([]);
      expect(error).toMatchObject({ kind: 'malformed' });
      expect(error?.message).toMatch(/JSON document, not an event stream/);
    });

    it('a closed port → refused, naming the address', async () => {
      const port = await closedPort();
      const { error } = await run(
        new LlmClient({ baseUrl: `http://127.0.0.1:${port}/v1`, apiKey: KEY }),
      );
      expect(error).toMatchObject({
        kind: 'refused',
        message: `could not reach the model server: connect ECONNREFUSED 127.0.0.1:${port}`,
      });
    });

    it('an unknown host → refused', async () => {
      const { error } = await run(
        new LlmClient({ baseUrl: 'http://no-such-host.invalid/v1', apiKey: KEY }),
      );
      expect(error?.kind).toBe('refused');
      expect(error?.message).toMatch(/^could not reach the model server: .*no-such-host\.invalid/);
    });

    it('a socket closed mid-stream → an LlmError after the deltas that arrived', async () => {
      fake.next({ stream: ['a', 'b', 'c'], dropAfter: 2 });
      const { events, error } = await run(client);
      expect(deltas(events)).toEqual(['a', 'b']);
      expect(error).toBeInstanceOf(LlmError);
      expect(error?.kind).toBe('refused');
      expect(error?.message).toMatch(/^lost the connection to the model server: /);
      expect(error?.message).not.toMatch(/\n/);
    });

    it('no base URL → refused without a request', async () => {
      const { error } = await run(new LlmClient({ baseUrl: '' }));
      expect(error).toMatchObject({ kind: 'refused' });
      expect(fake.requests).toEqual([]);
    });
  });

  describe('aborting', () => {
    it.each(['headers', 'nothing'] as const)(
      'a server that hangs (%s sent) → aborted promptly, and the upstream connection closes',
      async (hang) => {
        fake.next({ hang });
        const controller = new AbortController();
        const result = run(client, controller.signal);
        await fake.receivedRequests(1);
        const started = Date.now();
        controller.abort();
        const { error } = await result;
        expect(Date.now() - started).toBeLessThan(1000);
        expect(error).toMatchObject({
          kind: 'aborted',
          message: 'the request to the model server was aborted',
        });
        await fake.requests[0].closed;
        expect(fake.requests[0].aborted).toBe(true);
      },
    );

    it('mid-stream → aborted after the deltas so far, and the upstream connection closes', async () => {
      const gate = fake.gate();
      fake.next({ stream: ['a', gate.wait, 'b'] });
      const controller = new AbortController();
      const events: LlmEvent[] = [];
      let error: unknown;
      try {
        for await (const event of client.stream(REQUEST, controller.signal)) {
          events.push(event);
          controller.abort();
        }
      } catch (e) {
        error = e;
      }
      expect(events).toEqual([{ type: 'delta', content: 'a' }]);
      expect(error).toBeInstanceOf(LlmError);
      expect((error as LlmError).kind).toBe('aborted');
      await fake.requests[0].closed;
      expect(fake.requests[0].aborted).toBe(true);
      expect(fake.openStreams).toBe(0);
      gate.open();
    });

    it('a signal aborted before the start → aborted, nothing sent', async () => {
      const { error } = await run(client, AbortSignal.abort());
      expect(error?.kind).toBe('aborted');
      expect(fake.requests).toEqual([]);
    });

    it('a consumer that stops reading closes the upstream connection', async () => {
      const gate = fake.gate();
      fake.next({ stream: ['a', gate.wait, 'b'] });
      for await (const event of client.stream(REQUEST, new AbortController().signal)) {
        expect(event).toEqual({ type: 'delta', content: 'a' });
        break;
      }
      await fake.requests[0].closed;
      expect(fake.requests[0].aborted).toBe(true);
      gate.open();
    });

    it('a server that goes away while hanging → refused, not a hang', async () => {
      const doomed = await startFakeLlm();
      doomed.setDefault({ hang: 'headers' });
      const result = run(new LlmClient({ baseUrl: doomed.baseUrl }));
      await doomed.receivedRequests(1);
      expect(doomed.openStreams).toBe(1);
      await doomed.close();
      const { error } = await result;
      expect(error?.kind).toBe('refused');
    });

    it('a finished stream leaves no connection open on the fake', async () => {
      fake.next({ stream: ['a'] });
      await run(client);
      await fake.requests[0].closed;
      expect(fake.requests[0].aborted).toBe(false);
      expect(fake.openStreams).toBe(0);
    });
  });
});
