/**
 * `npm run bench:replies`: replies from a language model (issue 14, "Speed"), against the built
 * server and the fake OpenAI-compatible server of the tests (test/support/fake-llm.ts), which runs
 * in this process so that the time a chunk is written upstream and the time its delta reaches the
 * SSE client (test/helpers/sse.ts) are read on one clock (performance.now()).
 *
 * 1. Relay: sequential replies of N chunks 20 ms apart; per chunk, from the fake writing it to the
 *    client holding the `delta` that carries it (the first delta whose `id:` covers it), p50/p99.
 *    The first chunk of each reply is reported apart (it also pays for the reply's start).
 * 2. Many streams: concurrent replies at 50 chunks/s each; every reply must end `complete` with
 *    the client's deltas, the `done` message and the stored message all equal to what the fake
 *    sent. Wall time and the server's peak RSS (VmHWM, and VmRSS sampled every 100 ms).
 * 3. Appends (`POST …/messages`, as bench.ts's "append a message") idle, while replies stream,
 *    and idle again: req/s, p50, p99, and streaming p99 / idle p99.
 *
 * Options (a command-line flag wins over its environment variable):
 *   --database-url  BENCH_DATABASE_URL  default: a fresh SQLite file; postgres://… works in a
 *                                       schema of its own, dropped at the end
 *   --relay-replies BENCH_RELAY_REPLIES sequential replies of the relay scenario (default 20)
 *   --chunks        BENCH_CHUNKS        chunks per relay reply (default 50)
 *   --streams       BENCH_STREAMS       concurrent replies of scenario 2 (default 100)
 *   --seconds       BENCH_SECONDS       how long each of them streams (default 10)
 *   --busy-streams  BENCH_BUSY_STREAMS  replies streaming during the appends (default 50)
 *   --connections   BENCH_CONNECTIONS   append connections (default 16)
 *   --duration      BENCH_DURATION      seconds of each measured append round (default 5)
 *   --warmup        BENCH_WARMUP        seconds of warm-up before each append round (default 2)
 *
 * Results go to stdout, progress to stderr. Exit code 1 when a reply lost text or did not end
 * `complete`, or an append round saw errors or non-2xx answers.
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { SseClient } from '../test/helpers/sse';
import { type FakeLlm, startFakeLlm } from '../test/support/fake-llm';
import { fire, measurement, type Measurement, post, problemsOf } from './load';
import { Options } from './options';
import { alignedTable, formatMiB, machineInfo } from './report';
import {
  assertAlive,
  benchSchema,
  ensureBuilt,
  peakRssMiB,
  progress,
  rssMiB,
  runBenchScript,
  type Server,
  startOurServer,
} from './servers';

/** 50 chunks a second, as the issue asks. */
const CHUNK_MS = 20;
const TARGETS = { relayP50Ms: 10, peakRssMiB: 300, appendP99Ratio: 2 };

interface Config {
  databaseUrl: string | undefined;
  relayReplies: number;
  chunks: number;
  streams: number;
  seconds: number;
  busyStreams: number;
  connections: number;
  duration: number;
  warmup: number;
}

function readConfig(): Config {
  const options = new Options();
  const config = {
    databaseUrl: options.text('--database-url', 'BENCH_DATABASE_URL'),
    relayReplies: options.integer('--relay-replies', 'BENCH_RELAY_REPLIES', 20, 1),
    chunks: options.integer('--chunks', 'BENCH_CHUNKS', 50, 2),
    streams: options.integer('--streams', 'BENCH_STREAMS', 100, 1),
    seconds: options.integer('--seconds', 'BENCH_SECONDS', 10, 1),
    busyStreams: options.integer('--busy-streams', 'BENCH_BUSY_STREAMS', 50, 1),
    connections: options.integer('--connections', 'BENCH_CONNECTIONS', 16, 1),
    duration: options.integer('--duration', 'BENCH_DURATION', 5, 1),
    warmup: options.integer('--warmup', 'BENCH_WARMUP', 2, 0),
  };
  options.rejectUnknown();
  return config;
}

/** The i-th piece of text the fake streams: token-sized, of varying length. */
const piece = (i: number) => ` tok${i}`;
const pieces = (count: number) => Array.from({ length: count }, (_, i) => piece(i));

const USER_TEXT = 'Explain optimistic locking in two sentences.';

/** A session holding one user message, the parent of the reply asked for in it. */
interface Conversation {
  sessionId: string;
  parentId: number;
}

async function postJson<T>(url: string, body: unknown): Promise<T> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (res.status !== 201)
    throw new Error(`POST ${url} answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as T;
}

async function conversation(base: string, name: string): Promise<Conversation> {
  const { id } = await postJson<{ id: string }>(`${base}/api/v1/sessions`, { name });
  const message = await postJson<{ id: number }>(`${base}/api/v1/sessions/${id}/messages`, {
    content: USER_TEXT,
    role: 'user',
  });
  return { sessionId: id, parentId: message.id };
}

async function conversations(base: string, count: number, name: string) {
  const all: Conversation[] = [];
  for (let i = 0; i < count; i++) all.push(await conversation(base, `${name} ${i + 1}`));
  return all;
}

/** `POST …/replies` with `Accept: text/event-stream`, read as it arrives. */
function askReply(base: string, c: Conversation): SseClient {
  return new SseClient(`${base}/api/v1/sessions/${c.sessionId}/replies`, {
    method: 'POST',
    body: { parent_id: c.parentId },
  });
}

interface FinalMessage {
  id: number;
  status: string;
  content: string;
}

/** Why a finished reply stream is not what the fake sent, or undefined if it is. */
async function checkReply(
  base: string,
  c: Conversation,
  client: SseClient,
  expected: string,
): Promise<string | undefined> {
  const done = client.named('done')[0]?.data as FinalMessage | undefined;
  if (client.status !== 200) return `answered ${client.status}: ${client.text.slice(0, 300)}`;
  if (!done) return `no done event (${client.content.length} of ${expected.length} characters)`;
  if (done.status !== 'complete') return `ended ${done.status}`;
  if (client.content !== expected) {
    return `deltas hold ${client.content.length} of ${expected.length} characters, or other text`;
  }
  if (done.content !== expected) return 'the done message differs from what was sent';
  const res = await fetch(`${base}/api/v1/sessions/${c.sessionId}/messages/${done.id}`);
  const stored = (await res.json()) as FinalMessage;
  if (stored.content !== expected || stored.status !== 'complete') {
    return `stored as ${stored.status} with ${stored.content.length} characters`;
  }
  return undefined;
}

/**
 * Waits for the end of the stream, noting when each event arrived: `until` runs its check on
 * every chunk the client reads, a microtask after it.
 */
async function arrivalsOf(client: SseClient, timeoutMs: number): Promise<number[]> {
  const arrivals: number[] = [];
  await client.until((c) => {
    const now = performance.now();
    while (arrivals.length < c.events.length) arrivals.push(now);
    return c.named('done').length > 0;
  }, timeoutMs);
  await client.ended;
  return arrivals;
}

/**
 * A pause of CHUNK_MS before a chunk, started only when the fake reaches it (it awaits the step),
 * which notes the time: the fake writes the chunk after it within the same macrotask.
 */
class Stamp implements PromiseLike<void> {
  constructor(private readonly note: () => void) {}

  then<A = void, B = never>(
    onfulfilled?: ((value: void) => A | PromiseLike<A>) | null,
    onrejected?: ((reason: unknown) => B | PromiseLike<B>) | null,
  ): PromiseLike<A | B> {
    return sleep(CHUNK_MS)
      .then(() => this.note())
      .then(onfulfilled, onrejected);
  }
}

function percentile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

const ms = (value: number) => `${value.toFixed(2)} ms`;

interface RelayResult {
  relay: number[];
  first: number[];
  deltas: number;
}

async function relay(
  base: string,
  fake: FakeLlm,
  config: Config,
  failures: string[],
): Promise<RelayResult> {
  const result: RelayResult = { relay: [], first: [], deltas: 0 };
  const expected = pieces(config.chunks).join('');
  const ends: number[] = [];
  for (let i = 0, length = 0; i < config.chunks; i++) ends.push((length += piece(i).length));
  // One reply before measuring, so the JIT has seen the path once.
  const all = await conversations(base, config.relayReplies + 1, 'Bench: relay');
  for (const [n, c] of all.entries()) {
    const written: number[] = [];
    fake.next({
      stream: pieces(config.chunks).flatMap((text, i) => [
        new Stamp(() => (written[i] = performance.now())),
        text,
      ]),
    });
    const client = askReply(base, c);
    const arrivals = await arrivalsOf(client, 60_000);
    const problem = await checkReply(base, c, client, expected);
    if (problem) failures.push(`relay reply ${n + 1}: ${problem}`);
    if (n === 0) continue;
    const deltas = client.events.flatMap((e, i) =>
      e.event === 'delta' ? [{ end: Number(e.id), at: arrivals[i] }] : [],
    );
    result.deltas += deltas.length;
    for (let i = 0; i < config.chunks; i++) {
      const carrier = deltas.find((d) => d.end >= ends[i]);
      if (!carrier || written[i] === undefined) continue;
      (i === 0 ? result.first : result.relay).push(carrier.at - written[i]);
    }
  }
  return result;
}

interface StreamsResult {
  complete: number;
  chunks: number;
  deltas: number;
  wallSeconds: number;
  sampledPeakMiB: number;
  hwmMiB: number | undefined;
}

/** `count` replies streaming at once, `chunks` each, CHUNK_MS apart; each checked at its end. */
async function streams(
  server: Server,
  fake: FakeLlm,
  all: Conversation[],
  chunks: number,
  failures: string[],
  what: string,
  whileStreaming: () => Promise<void> = () => Promise.resolve(),
): Promise<StreamsResult> {
  const base = server.base;
  const expected = pieces(chunks).join('');
  fake.setDefault({ stream: pieces(chunks), delayMs: CHUNK_MS });
  const pid = server.child.pid!;
  let sampledPeakMiB = rssMiB(pid);
  const sampler = setInterval(() => (sampledPeakMiB = Math.max(sampledPeakMiB, rssMiB(pid))), 100);
  const started = performance.now();
  const clients = all.map((c) => askReply(base, c));
  try {
    // Every reply has begun streaming before anything else is measured alongside.
    await Promise.all(clients.map((c) => c.until((x) => x.named('delta').length > 0, 30_000)));
    await whileStreaming();
    await Promise.all(clients.map((c) => c.ended));
  } finally {
    clearInterval(sampler);
  }
  const wallSeconds = (performance.now() - started) / 1000;
  let complete = 0;
  for (const [i, client] of clients.entries()) {
    const problem = await checkReply(base, all[i], client, expected);
    if (problem) failures.push(`${what}, reply ${i + 1}: ${problem}`);
    else complete++;
  }
  return {
    complete,
    chunks: complete * chunks,
    deltas: clients.reduce((n, c) => n + c.named('delta').length, 0),
    wallSeconds,
    sampledPeakMiB,
    hwmMiB: peakRssMiB(pid),
  };
}

async function appends(
  server: Server,
  sessionId: string,
  config: Config,
  failures: string[],
  what: string,
): Promise<Measurement> {
  const request = post(`/api/v1/sessions/${sessionId}/messages`, {
    content: USER_TEXT,
    role: 'user',
  });
  let result: Measurement | undefined;
  for (const kind of config.warmup > 0 ? ['warm-up', 'measured'] : ['measured']) {
    const duration = kind === 'warm-up' ? config.warmup : config.duration;
    const raw = await fire(server.base, [request], config.connections, { duration });
    assertAlive(server);
    const problems = problemsOf(raw);
    if (problems) failures.push(`appends ${what} (${kind}): ${problems}`);
    result = measurement(raw);
  }
  progress(
    `appends ${what}: ${result!.requestsPerSecond.toFixed(0)} req/s, p50 ${result!.p50Ms} ms, p99 ${result!.p99Ms} ms`,
  );
  return result!;
}

const redact = (url: string) => url.replace(/^(postgres(?:ql)?:\/\/[^:/@]+:)[^@]*@/, '$1***@');
const verdict = (ok: boolean) => (ok ? 'ok' : 'MISS');

async function run(config: Config, tmp: string): Promise<number> {
  await ensureBuilt();
  const databaseUrl = config.databaseUrl
    ? await benchSchema(config.databaseUrl)
    : `sqlite:${join(tmp, 'replies.sqlite')}`;
  const fake = await startFakeLlm();
  const server = await startOurServer(databaseUrl, {
    env: { AUTH_MODE: 'none', LLM_BASE_URL: fake.baseUrl },
  });
  // Nest's logger writes warnings to stdout and errors to stderr; the helper keeps only stderr.
  let stdout = '';
  server.child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  const streamChunks = config.seconds * (1000 / CHUNK_MS);
  const appendSeconds = config.warmup + config.duration;
  // Long enough to outlast the append rounds, which start once every reply has begun.
  const busyChunks = (appendSeconds + 3) * (1000 / CHUNK_MS);
  console.log(
    `${machineInfo([
      `server: 1 process, ${redact(config.databaseUrl ?? databaseUrl)}; fake model server and clients in the bench process`,
      `relay: ${config.relayReplies} sequential replies × ${config.chunks} chunks, ${CHUNK_MS} ms apart; ` +
        `${config.streams} concurrent replies × ${streamChunks} chunks (${config.seconds} s); ` +
        `appends: ${config.connections} connections, ${config.warmup} s warm-up + ${config.duration} s, ` +
        `${config.busyStreams} replies streaming`,
    ])}\n`,
  );
  const failures: string[] = [];

  progress(`relay: ${config.relayReplies} replies × ${config.chunks} chunks`);
  const relayed = await relay(server.base, fake, config, failures);
  assertAlive(server);
  const relayP50 = percentile(relayed.relay, 0.5);
  const relayLines = [
    ['relay (upstream chunk → client delta)', 'samples', 'p50', 'p99', 'max', 'target'],
    [
      'chunks 2..n of each reply',
      String(relayed.relay.length),
      ms(relayP50),
      ms(percentile(relayed.relay, 0.99)),
      ms(Math.max(...relayed.relay)),
      `p50 < ${TARGETS.relayP50Ms} ms: ${verdict(relayP50 < TARGETS.relayP50Ms)}`,
    ],
    [
      "first chunk (upstream's first → client's first delta)",
      String(relayed.first.length),
      ms(percentile(relayed.first, 0.5)),
      ms(percentile(relayed.first, 0.99)),
      ms(Math.max(...relayed.first)),
      '',
    ],
  ];
  console.log(alignedTable(relayLines));
  console.log(
    `${relayed.deltas} delta events carried ${relayed.relay.length + relayed.first.length} chunks\n`,
  );

  progress(`${config.streams} concurrent replies × ${streamChunks} chunks`);
  const many = await streams(
    server,
    fake,
    await conversations(server.base, config.streams, 'Bench: streams'),
    streamChunks,
    failures,
    `${config.streams} streams`,
  );
  assertAlive(server);
  const peak = Math.max(many.sampledPeakMiB, many.hwmMiB ?? 0);
  console.log(
    alignedTable([
      [
        'concurrent replies',
        'complete',
        'chunks delivered',
        'delta events',
        'wall time',
        'peak RSS (sampled)',
        'VmHWM',
        'target',
      ],
      [
        `${config.streams} × ${streamChunks} chunks at ${1000 / CHUNK_MS}/s`,
        `${many.complete}/${config.streams}`,
        `${many.chunks}/${config.streams * streamChunks}`,
        String(many.deltas),
        `${many.wallSeconds.toFixed(1)} s`,
        formatMiB(many.sampledPeakMiB),
        formatMiB(many.hwmMiB),
        `all delivered, RSS < ${TARGETS.peakRssMiB} MiB: ${verdict(
          many.complete === config.streams && peak < TARGETS.peakRssMiB,
        )}`,
      ],
    ]),
  );
  console.log('');

  const writeSession = (await conversation(server.base, 'Bench: appends')).sessionId;
  progress('appends, idle');
  const idle = await appends(server, writeSession, config, failures, 'idle');
  progress(`appends while ${config.busyStreams} replies stream`);
  let busy: Measurement | undefined;
  const background = await streams(
    server,
    fake,
    await conversations(server.base, config.busyStreams, 'Bench: busy'),
    busyChunks,
    failures,
    `${config.busyStreams} streams under appends`,
    async () => {
      busy = await appends(server, writeSession, config, failures, 'while streaming');
    },
  );
  progress('appends, idle again');
  const idleAgain = await appends(server, writeSession, config, failures, 'idle again');
  // Against each idle round; the verdict takes the worse of the two ratios.
  const ratios = [idle, idleAgain].map((m) => busy!.p99Ms / m.p99Ms);
  const worst = Math.max(...ratios);
  const row = (name: string, m: Measurement, extra: string) => [
    name,
    m.requestsPerSecond.toFixed(0),
    `${m.p50Ms} ms`,
    `${m.p99Ms} ms`,
    extra,
  ];
  console.log(
    alignedTable([
      ['appends (POST …/messages)', 'req/s', 'p50', 'p99', 'streaming p99 / this p99'],
      row('idle', idle, `${ratios[0].toFixed(2)}×`),
      row(`while ${config.busyStreams} replies stream`, busy!, ''),
      row('idle again', idleAgain, `${ratios[1].toFixed(2)}×`),
    ]),
  );
  console.log(
    `target: streaming p99 < ${TARGETS.appendP99Ratio}× idle p99: ${verdict(worst < TARGETS.appendP99Ratio)}; ` +
      `${background.complete}/${config.busyStreams} streaming replies ended complete, ` +
      `${background.chunks} chunks delivered`,
  );
  console.log(
    `\nserver peak RSS (VmHWM) over the whole run: ${formatMiB(peakRssMiB(server.child.pid))}`,
  );

  await server.stop();
  await fake.close();
  // LOG_LEVEL=warn: anything the server logged (a failed progress write, a failed reply) is news.
  const logged = `${stdout}\n${server.stderr()}`.split('\n').filter(Boolean);
  console.log(`server log (warnings and errors): ${logged.length} line(s)`);
  for (const line of logged.slice(0, 10)) console.log(`  ${line.slice(0, 300)}`);
  if (failures.length > 0) {
    console.log(`\n${failures.length} problem(s):`);
    for (const failure of failures.slice(0, 20)) console.log(`  ${failure}`);
  }
  return failures.length === 0 ? 0 : 1;
}

runBenchScript('bench-replies', (tmp) => run(readConfig(), tmp));
