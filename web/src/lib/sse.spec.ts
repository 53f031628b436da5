import { readSse, SseParser } from './sse';

function parseAll(chunks: string[]) {
  const parser = new SseParser();
  return chunks.flatMap((chunk) => parser.feed(chunk));
}

describe('SseParser', () => {
  it('reads named events with ids, as the replies endpoint sends them', () => {
    expect(
      parseAll([
        'retry: 1000\n\nevent: message\ndata: {"id":7}\n\n',
        'event: delta\nid: 5\ndata: {"content":"Hello"}\n\n: keep-alive\n\nevent: done\ndata: {}\n\n',
      ]),
    ).toEqual([
      { event: 'message', data: '{"id":7}', id: null },
      { event: 'delta', data: '{"content":"Hello"}', id: '5' },
      { event: 'done', data: '{}', id: '5' },
    ]);
  });

  it('gives the same events however the text is cut into chunks', () => {
    const text =
      'event: delta\r\nid: 3\r\ndata: {"content":"a\\nb"}\r\n\r\nevent: delta\rid: 6\rdata: x\r\rdata: one\ndata: two\n\n';
    const whole = parseAll([text]);
    expect(whole).toEqual([
      { event: 'delta', data: '{"content":"a\\nb"}', id: '3' },
      { event: 'delta', data: 'x', id: '6' },
      { event: 'message', data: 'one\ntwo', id: '6' },
    ]);
    for (let size = 1; size <= 7; size++) {
      const chunks = text.match(new RegExp(`[\\s\\S]{1,${size}}`, 'g')) ?? [];
      expect(parseAll(chunks)).toEqual(whole);
    }
    // A CRLF split between two chunks is one line end, not two (which would end an event early).
    expect(parseAll(['data: a\r', '\ndata: b\r\n\r\n'])).toEqual([
      { event: 'message', data: 'a\nb', id: null },
    ]);
  });

  it('follows the field rules: one space dropped, comments and unknown fields ignored, no-colon lines', () => {
    expect(
      parseAll(['\uFEFFdata:  two spaces\n:comment\nfoo: bar\ndata\nid\n\n', 'event: x\n\n']),
    ).toEqual([{ event: 'message', data: ' two spaces\n', id: '' }]);
  });

  it('keeps no event the stream did not finish', async () => {
    const bytes = new TextEncoder().encode('event: delta\ndata: "é"\n\nevent: delta\ndata: "cut');
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        // Split inside the two-byte "é": the decoder must join it.
        const cut = bytes.indexOf(0xc3) + 1;
        controller.enqueue(bytes.slice(0, cut));
        controller.enqueue(bytes.slice(cut));
        controller.close();
      },
    });
    const events = [];
    for await (const event of readSse(body)) events.push(event);
    expect(events).toEqual([{ event: 'delta', data: '"é"', id: null }]);
  });
});
