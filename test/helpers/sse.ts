import { request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One server-sent event as a client sees it (comments kept apart). */
export interface SseEvent {
  event: string;
  id?: string;
  data: unknown;
}

/** An SSE response read as it arrives: its status, headers, events, and the raw text. */
export class SseClient {
  readonly events: SseEvent[] = [];
  comments: string[] = [];
  text = '';
  status = 0;
  headers: IncomingMessage['headers'] = {};
  /** Resolves when the server ends the response. */
  readonly ended: Promise<void>;
  private buffer = '';
  private waiters: (() => void)[] = [];
  private res: IncomingMessage | undefined;
  private abort = new AbortController();

  constructor(
    url: string,
    options: { method?: string; headers?: Record<string, string>; body?: unknown } = {},
  ) {
    this.ended = new Promise((resolve, reject) => {
      const body = options.body === undefined ? undefined : JSON.stringify(options.body);
      const req = httpRequest(
        url,
        {
          method: options.method ?? 'GET',
          signal: this.abort.signal,
          headers: {
            Accept: 'text/event-stream',
            ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
            ...options.headers,
          },
        },
        (res) => {
          this.res = res;
          this.status = res.statusCode ?? 0;
          this.headers = res.headers;
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => this.take(chunk));
          res.on('end', () => resolve());
          res.on('close', () => resolve());
          res.on('error', () => resolve());
          this.wakeAll();
        },
      );
      req.on('error', (error) => {
        if (this.abort.signal.aborted) resolve();
        else reject(error);
      });
      req.end(body);
    });
  }

  /** Waits until `check` holds over what has arrived (checked on every chunk), or fails after `ms`. */
  async until(check: (client: this) => boolean, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!check(this)) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(`SSE: condition not met within ${ms} ms; received:\n${this.text}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** The text of every delta, joined. */
  get content(): string {
    return this.events
      .filter((e) => e.event === 'delta')
      .map((e) => (e.data as { content: string }).content)
      .join('');
  }

  named(event: string): SseEvent[] {
    return this.events.filter((e) => e.event === event);
  }

  /** Goes away mid-stream, as a closed browser tab does. */
  close(): void {
    this.res?.destroy();
    this.abort.abort();
  }

  private take(chunk: string): void {
    this.text += chunk;
    this.buffer += chunk;
    let end: number;
    while ((end = this.buffer.indexOf('\n\n')) >= 0) {
      const block = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      const event: Partial<SseEvent> & { data?: unknown } = {};
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) this.comments.push(line.slice(1).trim());
        else if (line.startsWith('event: ')) event.event = line.slice(7);
        else if (line.startsWith('id: ')) event.id = line.slice(4);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      if (data.length > 0) {
        this.events.push({
          event: event.event ?? 'message',
          ...(event.id === undefined ? {} : { id: event.id }),
          data: JSON.parse(data.join('\n')) as unknown,
        });
      }
    }
    this.wakeAll();
  }

  private wakeAll(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}

/** The base URL of a listening test server (e.g. `app.getHttpServer()` after `listen(0)`). */
export function baseUrlOf(server: Server): string {
  const { port } = server.address() as AddressInfo;
  return `http://127.0.0.1:${port}`;
}
