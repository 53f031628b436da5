/** A JSON reply: its status and parsed body (`{}` when empty). */
export interface JsonReply {
  status: number;
  body: {
    id?: number | string;
    session_id?: string;
    timestamp?: string;
    message_count?: number;
  } & Record<string, unknown>;
}

/** One request to a listening server with `fetch`: real sockets, so hundreds can be in flight. */
export async function callJson(
  base: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<JsonReply> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as JsonReply['body']) : {} };
}
