import autocannon from 'autocannon';

export type Request = autocannon.Request;

const JSON_HEADERS = { 'content-type': 'application/json' };

export function post(path: string, body: unknown, headers: Record<string, string> = {}): Request {
  return {
    method: 'POST',
    path,
    headers: { ...JSON_HEADERS, ...headers },
    body: JSON.stringify(body),
  };
}

export function get(path: string, headers: Record<string, string> = {}): Request {
  return { method: 'GET', path, headers };
}

/** A load of either a fixed number of requests (`amount`) or a fixed time (`duration`, seconds). */
export type Load = { amount: number } | { duration: number };

export interface Measurement {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
}

/**
 * Cycles through `requests` on each connection. Autocannon records latency in whole milliseconds.
 */
export function fire(
  baseUrl: string,
  requests: Request[],
  connections: number,
  load: Load,
): Promise<autocannon.Result> {
  const amount = 'amount' in load ? load.amount : undefined;
  return autocannon({
    url: baseUrl,
    requests,
    // Autocannon refuses more connections than requests.
    connections: amount === undefined ? connections : Math.min(connections, amount),
    ...load,
  });
}

/** Why a load did not count as clean (errors, timeouts, non-2xx answers), or undefined if it did. */
export function problemsOf(result: autocannon.Result): string | undefined {
  if (result.errors === 0 && result.non2xx === 0 && result.mismatches === 0) return undefined;
  const statuses = Object.entries(result.statusCodeStats ?? {})
    .map(([code, stat]) => `${code}×${stat.count ?? 0}`)
    .join(', ');
  return (
    `${result.errors} errors (${result.timeouts} timeouts), ${result.non2xx} non-2xx, ` +
    `${result.mismatches} body mismatches; status codes: ${statuses || 'none'}`
  );
}

export function measurement(result: autocannon.Result): Measurement {
  return {
    requestsPerSecond: result.requests.average,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
  };
}
