/**
 * `npm run bench`: load-tests the built server against
 * - the ceiling (bench/ceiling-server.ts): plain node:http + better-sqlite3 doing the same work as
 *   well as plain code can (same schema and indexes, WAL, our `synchronous`, prepared statements,
 *   group commit, counters kept like ours, the same JSON, headers and input rules), and
 * - the framework floor (bench/floor-server.ts): our real Nest application answering the same
 *   routes with constant bodies, so everything but our services and the database;
 * each a child process on its own temporary database, ours and the ceiling seeded through their
 * HTTP APIs (10,000 sessions, a 200-message history). Before measuring, the bench checks that the
 * ceiling answers what ours answers (JSON shape, list headers, status codes of bad input).
 * Prints per scenario requests/s, p50 and p99 latency, ours/ceiling, ours/floor and our peak RSS.
 *
 * Options (a command-line flag wins over its environment variable):
 *   --connections  BENCH_CONNECTIONS  concurrent connections (default 32)
 *   --duration     BENCH_DURATION     seconds of each measured round (default 5)
 *   --warmup       BENCH_WARMUP       seconds of the warm-up round before each measured round
 *                                     (default 2; 0 skips it; cold JIT numbers say little)
 *   --database-url BENCH_DATABASE_URL our server's DATABASE_URL (default: a fresh SQLite file),
 *                                     e.g. postgres://root@127.0.0.1:5432/test; the bench works in a
 *                                     schema of its own there and drops it at the end. The ceiling
 *                                     and the floor stay on SQLite.
 *   --processes    BENCH_PROCESSES    processes of our server (default 1; more runs dist/cluster.js
 *                                     and needs PostgreSQL)
 *   --auth         BENCH_AUTH=1       also measure our server with AUTH_MODE=api-key (every request
 *                                     carries a key) and print what the key check costs per request
 * e.g. `npm run bench -- --connections 64 --duration 10`, `npm run bench -- --auth`
 * SQLITE_SYNCHRONOUS=NORMAL in the environment applies to every server of the run.
 *
 * Results go to stdout, progress to stderr. The exit code is non-zero when any round (warm-up
 * included) saw a connection error, a timeout or a non-2xx answer, or the ceiling's answers differ.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fire, get, measurement, type Measurement, post, problemsOf, type Request } from './load';
import { Options } from './options';
import { formatMiB, machineInfo, type Row, table, targetNote } from './report';
import {
  assertAlive,
  benchSchema,
  ensureBuilt,
  FLOOR_PREFIX,
  type FloorAnswer,
  type FloorBodies,
  isPostgres,
  peakRssMiB,
  progress,
  ROOT,
  runBenchScript,
  type Server,
  startCeiling,
  startFloor,
  startOurServer,
} from './servers';

const HISTORY_MESSAGES = 200;
/**
 * Rounds of 9 exchanges, then an edit of the 6th question and its answer: 20 messages a round, of
 * which the branch keeps 12; 4 exchanges more at the end.
 */
const TREE_ROUNDS = 16;
const TREE_MESSAGES = TREE_ROUNDS * 20 + 8;
const TREE_BRANCH = TREE_ROUNDS * 12 + 8;
const SESSION_COUNT = 10_000;
const SEED_CONNECTIONS = 32;

/** A server as a client sees it: where it is and what every request carries (an API key). */
interface Endpoint {
  url: string;
  headers: Record<string, string>;
}

/** The data every scenario runs against, as ids on one server. */
interface Fixture {
  /** Holds exactly HISTORY_MESSAGES messages and is never written to during the rounds. */
  historySessionId: string;
  /** Takes every append, so the history session stays at its size. */
  writeSessionId: string;
  /** A conversation of TREE_MESSAGES messages with an edit every few turns (see seedTree). */
  treeSessionId: string;
}

const USER_TEXT =
  'Can you summarise the main differences between optimistic and pessimistic locking, ' +
  'and when each is the better choice?';
const ASSISTANT_TEXT = `${'Optimistic locking assumes conflicts are rare: it reads freely and checks a version at write time. '.repeat(4)}Pessimistic locking takes the lock up front.`;

const userMessage = { content: USER_TEXT, role: 'user' };
const assistantMessage = {
  content: ASSISTANT_TEXT,
  role: 'assistant',
  metadata: { model: 'default', tokens: 87 },
};

function messagesPath(sessionId: string, prefix = '/api/v1'): string {
  return `${prefix}/sessions/${sessionId}/messages`;
}

async function createSession(target: Endpoint, name: string): Promise<string> {
  const res = await fetch(`${target.url}/api/v1/sessions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...target.headers },
    body: JSON.stringify({ name }),
  });
  if (res.status !== 201) throw new Error(`POST /api/v1/sessions answered ${res.status}`);
  const { id } = (await res.json()) as { id: string };
  return id;
}

async function totalCount(target: Endpoint, path: string): Promise<number> {
  const url = `${target.url}${path}`;
  const res = await fetch(url, { headers: target.headers });
  const total = res.headers.get('x-total-count');
  if (res.status !== 200 || total === null) {
    throw new Error(`GET ${url} answered ${res.status} without X-Total-Count`);
  }
  return Number(total);
}

async function fireAll(target: Endpoint, requests: Request[], amount: number, what: string) {
  if (amount <= 0) return;
  const problems = problemsOf(await fire(target.url, requests, SEED_CONNECTIONS, { amount }));
  if (problems) throw new Error(`seeding ${what} failed: ${problems}`);
}

/**
 * Seeds through the HTTP API, so both servers store exactly what they would in production. Sessions
 * are topped up to SESSION_COUNT rather than added blindly, so a reused database (PostgreSQL) is
 * not grown on every run.
 */
async function seed(target: Endpoint): Promise<Fixture> {
  const historySessionId = await createSession(target, 'Benchmark: 200-message history');
  const writeSessionId = await createSession(target, 'Benchmark: appends');
  const { headers } = target;
  await fireAll(
    target,
    [
      post(messagesPath(historySessionId), userMessage, headers),
      post(messagesPath(historySessionId), assistantMessage, headers),
    ],
    HISTORY_MESSAGES,
    'the history',
  );
  const existing = await sessionCount(target);
  const session = post(
    '/api/v1/sessions',
    { name: 'Benchmark filler', rag_document_ids: ['doc-1'] },
    headers,
  );
  await fireAll(target, [session], SESSION_COUNT - existing, 'the sessions');

  const history = await totalCount(target, `${messagesPath(historySessionId)}?limit=1`);
  if (history !== HISTORY_MESSAGES) {
    throw new Error(`the history session holds ${history} messages, not ${HISTORY_MESSAGES}`);
  }
  return { historySessionId, writeSessionId, treeSessionId: await seedTree(target) };
}

/**
 * A chat whose user edits a message every few turns, as users do: each edit is a sibling of the
 * message edited, and the conversation goes on from it, so the current branch (TREE_BRANCH long)
 * holds about half of the session's TREE_MESSAGES. Posted one at a time: each edit names a
 * message posted before it.
 */
async function seedTree(target: Endpoint): Promise<string> {
  const id = await createSession(target, 'Benchmark: a branched conversation');
  const posted: { id: number; parent_id: number | null }[] = [];
  const send = async (body: object) => {
    const res = await fetch(`${target.url}${messagesPath(id)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...target.headers },
      body: JSON.stringify(body),
    });
    if (res.status !== 201) throw new Error(`seeding the tree: POST answered ${res.status}`);
    posted.push((await res.json()) as (typeof posted)[number]);
  };
  const exchange = async () => {
    await send(userMessage);
    await send(assistantMessage);
  };
  for (let round = 0; round < TREE_ROUNDS; round++) {
    for (let i = 0; i < 9; i++) await exchange();
    // The 6th question of the round, asked again: a sibling of it, answered.
    await send({ ...userMessage, parent_id: posted.at(-8)!.parent_id });
    await send(assistantMessage);
  }
  for (let i = 0; i < 4; i++) await exchange();
  const messages = await totalCount(target, `${messagesPath(id)}?limit=1`);
  const branch = await totalCount(target, `${messagesPath(id)}?branch=current&limit=1`);
  if (messages !== TREE_MESSAGES || branch !== TREE_BRANCH) {
    throw new Error(
      `the tree holds ${messages} messages and a ${branch}-message branch, not ${TREE_MESSAGES} and ${TREE_BRANCH}`,
    );
  }
  return id;
}

function sessionCount(target: Endpoint): Promise<number> {
  return totalCount(target, '/api/v1/sessions?limit=1');
}

interface Config {
  connections: number;
  duration: number;
  warmup: number;
  processes: number;
  databaseUrl: string | undefined;
  auth: boolean;
}

function readConfig(): Config {
  const options = new Options();
  const config = {
    connections: options.integer('--connections', 'BENCH_CONNECTIONS', 32, 1),
    duration: options.integer('--duration', 'BENCH_DURATION', 5, 1),
    warmup: options.integer('--warmup', 'BENCH_WARMUP', 2, 0),
    processes: options.integer('--processes', 'BENCH_PROCESSES', 1, 1),
    databaseUrl: options.text('--database-url', 'BENCH_DATABASE_URL'),
    auth: options.flag('--auth', 'BENCH_AUTH'),
  };
  options.rejectUnknown();
  return config;
}

/** A server under load: where it is, what each request carries, which ids it answers for. */
interface Target extends Endpoint {
  server: Server;
  fixture: Fixture;
  /** The path prefix of its routes: the floor answers under its own. */
  prefix: string;
}

interface Scenario {
  name: string;
  /** Each connection cycles through these in order. */
  requests: (t: Target) => Request[];
}

const append = (t: Target) =>
  post(messagesPath(t.fixture.writeSessionId, t.prefix), userMessage, t.headers);
const history = (t: Target) => get(messagesPath(t.fixture.historySessionId, t.prefix), t.headers);
const branch = (t: Target) =>
  get(`${messagesPath(t.fixture.treeSessionId, t.prefix)}?branch=current`, t.headers);
const list = (t: Target) => get(`${t.prefix}/sessions`, t.headers);
const getSession = (t: Target) =>
  get(`${t.prefix}/sessions/${t.fixture.historySessionId}`, t.headers);

const SCENARIOS: Scenario[] = [
  { name: 'append a message', requests: (t) => [append(t)] },
  { name: 'read 200-message history', requests: (t) => [history(t)] },
  { name: `read a ${TREE_BRANCH}-message branch`, requests: (t) => [branch(t)] },
  { name: 'list 50 of 10,000 sessions', requests: (t) => [list(t)] },
  { name: 'get one session', requests: (t) => [getSession(t)] },
  {
    // A fixed cycle rather than random picks, so every run sends the same mix:
    // 40% get-session, 20% history, 20% list, 20% append.
    name: 'mix 80% read / 20% write',
    requests: (t) => [getSession(t), history(t), getSession(t), list(t), append(t)],
  },
];

/** The database URL for printing: a password, if any, is not echoed. */
const redact = (url: string) => url.replace(/^(postgres(?:ql)?:\/\/[^:/@]+:)[^@]*@/, '$1***@');

async function measure(
  target: Target,
  scenario: Scenario,
  config: Config,
  failures: string[],
): Promise<Measurement> {
  let result: Measurement | undefined;
  for (const kind of config.warmup > 0 ? ['warm-up', 'measured'] : ['measured']) {
    const duration = kind === 'warm-up' ? config.warmup : config.duration;
    const raw = await fire(target.url, scenario.requests(target), config.connections, {
      duration,
    });
    assertAlive(target.server);
    const problems = problemsOf(raw);
    if (problems) failures.push(`${target.server.name}, ${scenario.name} (${kind}): ${problems}`);
    result = measurement(raw);
  }
  progress(
    `${target.server.name.padEnd(8)} ${scenario.name}: ${result!.requestsPerSecond.toFixed(0)} req/s, ` +
      `p50 ${result!.p50Ms} ms, p99 ${result!.p99Ms} ms`,
  );
  return result!;
}

async function seeded(server: Server, headers: Record<string, string> = {}): Promise<Target> {
  const endpoint = { url: server.base, headers };
  progress(`seeding ${server.name}`);
  const fixture = await seed(endpoint);
  progress(`${server.name} holds ${await sessionCount(endpoint)} sessions`);
  return { ...endpoint, server, fixture, prefix: '/api/v1' };
}

interface Answer {
  status: number;
  body: unknown;
  headers: Headers;
}

async function ask(target: Endpoint, request: Request): Promise<Answer> {
  const res = await fetch(`${target.url}${request.path}`, {
    method: request.method,
    headers: request.headers as Record<string, string>,
    body: request.body as string | undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
}

/** The keys and value types of a JSON answer, with arrays as their length and first item. */
function shape(value: unknown): unknown {
  if (Array.isArray(value)) return [value.length, shape(value[0])];
  if (value === null || typeof value !== 'object') return value === null ? 'null' : typeof value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, shape(v)]));
}

/** What a client can tell apart: status, JSON shape, list headers, problem fields. */
function summary(answer: Answer): string {
  const problem = answer.body as { errors?: { field: string }[] } | null;
  return JSON.stringify({
    status: answer.status,
    type: answer.headers.get('content-type'),
    shape: answer.status < 400 ? shape(answer.body) : undefined,
    fields: problem?.errors?.map((e) => e.field),
    total: answer.headers.get('x-total-count') !== null,
    link: answer.headers.get('link')?.replace(/\?.*>/, '?…>'),
  });
}

/** Bad input both servers must refuse alike; the valid requests come from the scenarios. */
function badRequests(t: Target): Request[] {
  const messages = messagesPath(t.fixture.writeSessionId);
  const sessions = '/api/v1/sessions';
  return [
    post(messages, {}),
    post(messages, { content: '' }),
    post(messages, { content: 'x', role: 'bot' }),
    post(messages, { content: 'x', metadata: [1] }),
    // JSON.stringify cannot write this number: the body is spelled out.
    { ...post(messages, {}), body: '{"content":"x","metadata":{"n":1e400}}' },
    post(messages, { content: '\u0000' }),
    post(messages, { content: 'x', extra: 1 }),
    { ...post(messages, { content: 'x' }), headers: { 'content-type': 'text/plain' } },
    { ...post(messages, {}), body: '{"content":' },
    post(messagesPath('no-such-session'), { content: 'x' }),
    post(sessions, { name: '   ' }),
    post(sessions, { metadata_tags: { k: 1 } }),
    post(sessions, { pinned: 'yes' }),
    get(`${sessions}?limit=0`),
    get(`${sessions}?limit=abc`),
    get(`${sessions}?skip=-1`),
    get(`${sessions}?archived=maybe`),
    get(`${sessions}?cursor=forged.cursor`),
    get(`${messagesPath(t.fixture.historySessionId)}?order=up`),
    get(`${sessions}/no-such-session`),
  ];
}

/**
 * Asks ours and the ceiling the same questions and lists where their answers differ; returns the
 * ceiling's answers to the scenarios' requests, for the floor to give.
 */
async function compareAnswers(
  ours: Target,
  ceiling: Target,
  differences: string[],
): Promise<FloorBodies> {
  const answers = {} as FloorBodies;
  const pairs: Array<[string, Request, Request]> = [
    ['append', append(ours), append(ceiling)],
    ['history', history(ours), history(ceiling)],
    ['branch', branch(ours), branch(ceiling)],
    ['list', list(ours), list(ceiling)],
    ['session', getSession(ours), getSession(ceiling)],
    ...badRequests(ours).map((request, i): [string, Request, Request] => [
      `${request.method} ${request.path}`,
      request,
      badRequests(ceiling)[i],
    ]),
  ];
  for (const [name, ourRequest, ceilingRequest] of pairs) {
    const [a, b] = [await ask(ours, ourRequest), await ask(ceiling, ceilingRequest)];
    if (summary(a) !== summary(b)) {
      differences.push(`${name}: ours ${summary(a)}\n    ceiling ${summary(b)}`);
    }
    if (name in { append: 1, history: 1, branch: 1, list: 1, session: 1 }) {
      const headers: Record<string, string> = {};
      for (const header of ['x-total-count', 'link']) {
        const value = b.headers.get(header);
        if (value !== null) headers[header] = value;
      }
      answers[name as keyof FloorBodies] = { body: b.body, headers } satisfies FloorAnswer;
    }
  }
  return answers;
}

/** An API key made by the CLI operators use (`npm run apikey`), on the server's database. */
async function createKey(databaseUrl: string): Promise<string> {
  const child = spawn(
    process.execPath,
    [join(ROOT, 'dist', 'cli', 'apikey.js'), 'create', '--owner', 'bench'],
    {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', DATABASE_URL: databaseUrl },
      stdio: ['ignore', 'pipe', 2],
    },
  );
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  const key = out.trim().split('\n').at(-1);
  if (code !== 0 || !key) throw new Error(`npm run apikey -- create exited with code ${code}`);
  return key;
}

async function run(config: Config, tmp: string): Promise<number> {
  if (config.processes > 1 && !isPostgres(config.databaseUrl)) {
    throw new Error(`--processes ${config.processes} needs --database-url postgres://…`);
  }
  await ensureBuilt();
  const fresh = async (name: string) =>
    config.databaseUrl ? benchSchema(config.databaseUrl) : `sqlite:${join(tmp, `${name}.sqlite`)}`;
  const ourDatabase = await fresh('ours');
  console.log(
    `${machineInfo([
      `load: ${config.connections} connections, ${config.warmup} s warm-up + ${config.duration} s measured per round`,
      `ours: ${config.processes} process(es), ${redact(config.databaseUrl ?? ourDatabase)}; ` +
        `ceiling and floor: SQLite; synchronous=${process.env.SQLITE_SYNCHRONOUS ?? 'FULL'}`,
    ])}\n`,
  );

  const opts = { processes: config.processes, env: { AUTH_MODE: 'none' } };
  const ours = await seeded(await startOurServer(ourDatabase, opts));
  const ceiling = await seeded(await startCeiling(tmp));
  const differences: string[] = [];
  const bodies = await compareAnswers(ours, ceiling, differences);
  const floorServer = await startFloor(tmp, bodies);
  const floor: Target = {
    url: floorServer.base,
    headers: {},
    server: floorServer,
    fixture: ours.fixture,
    prefix: FLOOR_PREFIX,
  };
  let keyed: Target | undefined;
  if (config.auth) {
    const keyedDatabase = await fresh('keyed');
    const server = await startOurServer(keyedDatabase, {
      processes: config.processes,
      env: { AUTH_MODE: 'api-key' },
      name: 'api-key',
    });
    keyed = await seeded(server, { authorization: `Bearer ${await createKey(keyedDatabase)}` });
  }

  const failures: string[] = [];
  const rows: Row[] = [];
  for (const scenario of SCENARIOS) {
    // The servers take turns within each scenario, so noise on shared cores falls on all alike.
    rows.push({
      scenario: scenario.name,
      ours: await measure(ours, scenario, config, failures),
      ceiling: await measure(ceiling, scenario, config, failures),
      floor: await measure(floor, scenario, config, failures),
      keyed: keyed && (await measure(keyed, scenario, config, failures)),
      oursPeakMiB: peakRssMiB(ours.server.child.pid),
    });
  }

  console.log(table(rows));
  console.log(targetNote());
  console.log(
    `peak RSS (VmHWM): ours ${formatMiB(peakRssMiB(ours.server.child.pid))}, ` +
      `ceiling ${formatMiB(peakRssMiB(ceiling.server.child.pid))}, ` +
      `floor ${formatMiB(peakRssMiB(floor.server.child.pid))}`,
  );
  for (const server of [ours, ceiling, floor, keyed]) await server?.server.stop();
  if (differences.length > 0) {
    console.log(`\nThe ceiling answered ${differences.length} request(s) unlike ours:`);
    for (const difference of differences) console.log(`  ${difference}`);
  }
  if (failures.length > 0) {
    console.log(`\n${failures.length} round(s) were not clean:`);
    for (const failure of failures) console.log(`  ${failure}`);
  }
  return failures.length + differences.length === 0 ? 0 : 1;
}

runBenchScript('bench', (tmp) => run(readConfig(), tmp));
