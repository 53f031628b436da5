import http, { type IncomingHttpHeaders } from 'node:http';

export interface RawRequest {
  method: string;
  /** Sent as is: percent-encoding and all. */
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
  /** Send the body with Transfer-Encoding: chunked instead of a Content-Length. */
  chunked?: boolean;
}

export interface RawReply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

/**
 * One HTTP request with full control over the bytes (no client-side encoding, validation or JSON),
 * on a keep-alive agent, so thousands of generated requests stay cheap.
 */
export function rawRequest(
  agent: http.Agent,
  port: number,
  request: RawRequest,
): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...request.headers };
    // Said explicitly: Node's client sends a GET or DELETE body without any framing otherwise.
    if (request.body && request.chunked) headers['transfer-encoding'] = 'chunked';
    else if (request.body) headers['content-length'] = String(request.body.length);
    const req = http.request(
      { host: '127.0.0.1', port, agent, method: request.method, path: request.path, headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text: Buffer.concat(chunks).toString(),
          }),
        );
        res.on('error', reject);
      },
    );
    req.setTimeout(15_000, () =>
      req.destroy(new Error(`no answer to ${request.method} ${request.path}`)),
    );
    req.on('error', reject);
    req.end(request.body);
  });
}
