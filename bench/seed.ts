import { fire, post, problemsOf, type Request } from './load';

export const HISTORY_MESSAGES = 200;
export const SESSION_COUNT = 10_000;
const SEED_CONNECTIONS = 32;

/** A server as a client sees it: where it is and what every request carries (an API key). */
export interface Endpoint {
  url: string;
  headers: Record<string, string>;
}

/** The data every scenario runs against, as ids on one server. */
export interface Fixture {
  /** Holds exactly HISTORY_MESSAGES messages and is never written to during the rounds. */
  historySessionId: string;
  /** Takes every append, so the history session stays at its size. */
  writeSessionId: string;
}

const USER_TEXT =
  'Can you summarise the main differences between optimistic and pessimistic locking, ' +
  'and when each is the better choice?';
const ASSISTANT_TEXT = `${'Optimistic locking assumes conflicts are rare: it reads freely and checks a version at write time. '.repeat(4)}Pessimistic locking takes the lock up front.`;

export const userMessage = { content: USER_TEXT, role: 'user' };
const assistantMessage = {
  content: ASSISTANT_TEXT,
  role: 'assistant',
  metadata: { model: 'default', tokens: 87 },
};

export function messagesPath(sessionId: string, prefix = '/api/v1'): string {
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
export async function seed(target: Endpoint): Promise<Fixture> {
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
  return { historySessionId, writeSessionId };
}

export function sessionCount(target: Endpoint): Promise<number> {
  return totalCount(target, '/api/v1/sessions?limit=1');
}
