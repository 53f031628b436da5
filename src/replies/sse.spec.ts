import type { ChatMessage } from '../messages/chat-message.entity';
import { mapChatMessage } from '../messages/dto/chat-message.dto';
import type { ReplySource, ReplyView } from './replies.service';
import { replyEvents } from './sse';

/** A reply whose text the test grows by hand. */
function growingReply() {
  const watchers = new Set<() => void>();
  const state: ReplyView = { content: '', ended: null };
  const source: ReplySource = {
    view: () => Promise.resolve({ ...state }),
    watch: (onChange) => {
      watchers.add(onChange);
      return () => watchers.delete(onChange);
    },
  };
  return {
    source,
    watchers,
    grow(text: string) {
      state.content += text;
      for (const w of watchers) w();
    },
    end(message: ChatMessage) {
      state.ended = message;
      for (const w of watchers) w();
    },
  };
}

const message = (content: string): ChatMessage => ({
  id: 7,
  session_id: 's',
  timestamp: 0,
  role: 'assistant',
  content,
  metadata: null,
  parent_id: 6,
  status: 'complete',
  generation: null,
});

describe('replyEvents', () => {
  it('makes one delta per read, carrying all the text since the last: a slow reader queues nothing', async () => {
    const reply = growingReply();
    const events = replyEvents(
      reply.source,
      { offset: 0, map: mapChatMessage, shutdown: new AbortController().signal },
      new AbortController().signal,
    );
    expect((await events.next()).value).toBe('retry: 1000\n\n');
    // 1,000 pieces arrive while nobody reads: the next read is one event with all of them.
    for (let i = 0; i < 1000; i++) reply.grow('x');
    expect((await events.next()).value).toBe(
      `id: 1000\nevent: delta\ndata: {"content":"${'x'.repeat(1000)}"}\n\n`,
    );
    reply.grow('é😀');
    reply.end(message(`${'x'.repeat(1000)}é😀`));
    const last = (await events.next()).value as string;
    expect(last).toMatch(/^id: 1003\nevent: delta\ndata: {"content":"é😀"}\n\nevent: done\ndata: /);
    expect((await events.next()).done).toBe(true);
    expect(reply.watchers.size).toBe(0);
  });

  it('starts after the offset, and ends without done when its signal aborts', async () => {
    const reply = growingReply();
    reply.grow('0123456789');
    const stop = new AbortController();
    const events = replyEvents(
      reply.source,
      { offset: 4, map: mapChatMessage, shutdown: stop.signal },
      stop.signal,
    );
    await events.next();
    expect((await events.next()).value).toBe(
      'id: 10\nevent: delta\ndata: {"content":"456789"}\n\n',
    );
    const pending = events.next();
    stop.abort();
    expect((await pending).done).toBe(true);
    expect(reply.watchers.size).toBe(0);
  });
});
