import { ApiError, type ChatMessage, send } from '../api/client';
import { readSse } from './sse';

export interface ReplyHandlers {
  /** The new reply, as stored when it started (`in_progress`, empty). */
  onMessage(message: ChatMessage): void;
  /** New text; `offset` is where it starts in the reply's content (UTF-16 units, as `id:` counts). */
  onDelta(text: string, offset: number): void;
  onDone(message: ChatMessage): void;
}

function base(sessionId: string): string {
  return `/api/v1/sessions/${encodeURIComponent(sessionId)}`;
}

/**
 * Reads a reply's event stream to its `done`. Returns false if the stream ended without one (the
 * connection broke): the caller resumes from the offset it has.
 */
async function follow(response: Response, handlers: ReplyHandlers, from: number): Promise<boolean> {
  if (!response.body) return false;
  let offset = from;
  for await (const event of readSse(response.body)) {
    const data = JSON.parse(event.data) as ChatMessage;
    if (event.event === 'message') handlers.onMessage(data);
    else if (event.event === 'delta') {
      // `id:` is the content's length after this delta.
      const end = event.id === null ? offset + data.content.length : Number(event.id);
      handlers.onDelta(data.content, end - data.content.length);
      offset = end;
    } else if (event.event === 'done') {
      handlers.onDone(data);
      return true;
    }
  }
  return false;
}

/** `POST …/replies` as an event stream. */
export async function startReply(
  sessionId: string,
  parentId: number,
  handlers: ReplyHandlers,
  signal: AbortSignal,
): Promise<boolean> {
  const response = await send(`${base(sessionId)}/replies`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream' },
    body: JSON.stringify({ parent_id: parentId }),
    signal,
  });
  return follow(response, handlers, 0);
}

/** `GET …/messages/{id}/stream?offset=`: the rest of a reply from what the page already has. */
export async function resumeReply(
  sessionId: string,
  messageId: number,
  offset: number,
  handlers: ReplyHandlers,
  signal: AbortSignal,
): Promise<boolean> {
  const response = await send(`${base(sessionId)}/messages/${messageId}/stream?offset=${offset}`, {
    headers: { Accept: 'text/event-stream' },
    signal,
  });
  return follow(response, handlers, offset);
}

export function isAbort(error: unknown): boolean {
  return error instanceof DOMException && error.name === 'AbortError';
}

export { ApiError };
