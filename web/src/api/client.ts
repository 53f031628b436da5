import createClient, { type Middleware } from 'openapi-fetch';
import type { components, paths } from './schema';

export type Session = components['schemas']['SessionDto'];
export type ChatMessage = components['schemas']['ChatMessageDto'];
export type SearchHit = components['schemas']['SearchHitDto'];
export type ImportResult = components['schemas']['ImportResultDto'];
export type Problem = components['schemas']['ProblemDto'];

const KEY_STORAGE = 'chat-sessions.api-key';

/** A problem document the API answered, or a network failure (status 0). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Partial<Problem> & { message_id?: number },
  ) {
    super(describeProblem(status, problem));
  }
}

/** One readable line: "Not Found: Session with ID '…' not found." plus the fields named. */
export function describeProblem(status: number, problem: Partial<Problem>): string {
  if (status === 0) return problem.detail ?? 'The server could not be reached.';
  const title = problem.title ?? `HTTP ${status}`;
  // A 400's detail usually lists its errors already: name only those it leaves out.
  const fields = (problem.errors ?? [])
    .filter((e) => !problem.detail?.includes(e.message))
    .map((e) => `${e.field}: ${e.message}`);
  const detail = problem.detail && problem.detail !== title ? `: ${problem.detail}` : '';
  return `${title}${detail}${fields.length > 0 ? ` (${fields.join('; ')})` : ''}`;
}

export const auth = {
  key: sessionStorage.getItem(KEY_STORAGE),
  /** Called on a 401: the page shows the key prompt again. */
  onUnauthorized: (_message: string) => {},
  set(key: string | null): void {
    this.key = key;
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
  },
};

function withKey(headers: Headers): Headers {
  if (auth.key) headers.set('Authorization', `Bearer ${auth.key}`);
  return headers;
}

const authMiddleware: Middleware = {
  onRequest({ request }) {
    withKey(request.headers);
    return request;
  },
};

export const api = createClient<paths>({ baseUrl: location.origin });
api.use(authMiddleware);

async function problemOf(response: Response): Promise<ApiError> {
  let body: Partial<Problem> = {};
  try {
    body = (await response.json()) as Partial<Problem>;
  } catch {
    body = { detail: response.statusText };
  }
  const error = new ApiError(response.status, body);
  if (response.status === 401) auth.onUnauthorized(error.message);
  return error;
}

type Result<T> = { data?: T; error?: unknown; response: Response };

/** The data of an openapi-fetch call (or of its result), or an ApiError. */
export async function ok<T>(call: Promise<Result<T>> | Result<T>): Promise<T> {
  let result: Result<T>;
  try {
    result = await call;
  } catch (error) {
    throw networkError(error);
  }
  if (!result.response.ok) {
    const error = new ApiError(result.response.status, result.error ?? {});
    if (result.response.status === 401) auth.onUnauthorized(error.message);
    throw error;
  }
  return result.data as T;
}

function networkError(error: unknown): Error {
  // A request the page aborted (it left the conversation) is not a failure to report.
  if (error instanceof ApiError || (error instanceof DOMException && error.name === 'AbortError')) {
    return error;
  }
  const reason = error instanceof Error ? error.message : String(error);
  return new ApiError(0, { detail: `The server could not be reached (${reason}).` });
}

/**
 * A request openapi-fetch does not model well (event streams, file bodies, downloads), with the
 * same key and the same errors.
 */
export async function send(path: string, init: RequestInit = {}): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(path, { ...init, headers: withKey(new Headers(init.headers)) });
  } catch (error) {
    throw networkError(error);
  }
  if (!response.ok) throw await problemOf(response);
  return response;
}

/** The `rel="next"` target of a Link header, if the page was full. */
export function nextLink(response: Response): string | null {
  const link = response.headers.get('Link') ?? '';
  const found = /<([^>]+)>\s*;\s*rel="?next"?/.exec(link);
  return found ? found[1] : null;
}
