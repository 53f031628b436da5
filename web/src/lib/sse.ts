/**
 * Server-sent events, read from a fetch body: EventSource cannot send an Authorization header or a
 * POST, and the replies endpoint needs both. Follows the WHATWG parsing rules: lines end in CRLF, LF
 * or CR (a CR at the end of one chunk may be followed by the LF in the next), `:` starts a comment,
 * one space after the colon is dropped, `data` lines join with LF, a blank line dispatches.
 */
export interface SseEvent {
  /** `message` when the stream named none. */
  event: string;
  data: string;
  /** The last `id:` seen so far (it carries over to later events, as in EventSource). */
  id: string | null;
}

export class SseParser {
  private pending = '';
  private sawCarriageReturn = false;
  private started = false;
  private data: string[] = [];
  private event = '';
  private lastId: string | null = null;

  /** Feeds decoded text; returns the events it completed. */
  feed(text: string): SseEvent[] {
    if (!this.started && text.length > 0) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    // The LF of a CRLF whose CR ended the previous chunk.
    if (this.sawCarriageReturn && text.startsWith('\n')) text = text.slice(1);
    this.sawCarriageReturn = false;
    const events: SseEvent[] = [];
    const buffer = this.pending + text;
    let start = 0;
    for (let i = 0; i < buffer.length; i++) {
      const char = buffer[i];
      if (char !== '\n' && char !== '\r') continue;
      this.line(buffer.slice(start, i), events);
      if (char === '\r') {
        if (i + 1 === buffer.length) this.sawCarriageReturn = true;
        else if (buffer[i + 1] === '\n') i++;
      }
      start = i + 1;
    }
    this.pending = buffer.slice(start);
    return events;
  }

  private line(line: string, events: SseEvent[]): void {
    if (line === '') {
      if (this.data.length > 0) {
        events.push({
          event: this.event || 'message',
          data: this.data.join('\n'),
          id: this.lastId,
        });
      }
      this.data = [];
      this.event = '';
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
    else if (field === 'id' && !value.includes('\0')) this.lastId = value;
  }
}

/** The events of a response body, as they arrive. */
export async function* readSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  const parser = new SseParser();
  const decoder = new TextDecoder();
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      yield* parser.feed(decoder.decode(value, { stream: true }));
    }
    // An event the stream did not finish with a blank line is dropped, as EventSource does.
    yield* parser.feed(decoder.decode());
  } finally {
    reader.releaseLock();
  }
}
