import fc from 'fast-check';
import { isStorableText } from '../common/fields/json-bounds';
import { StorableStream } from './storable-stream';

function through(deltas: string[]): string {
  const stream = new StorableStream();
  return deltas.map((d) => stream.take(d)).join('') + stream.flush();
}

/** The reference: code unit by code unit, pairs kept, anything unstorable replaced. */
function cleanedWhole(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const next = text.charCodeAt(i + 1);
    if (c >= 0xd800 && c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
      out += text[i] + text[i + 1];
      i++;
    } else if (c === 0 || (c >= 0xd800 && c <= 0xdfff)) out += '\ufffd';
    else out += text[i];
  }
  return out;
}

describe('StorableStream', () => {
  it('passes ordinary text through unchanged, however it is split', () => {
    expect(through(['Hel', 'lo ', 'wörld'])).toBe('Hello wörld');
  });

  it('joins a surrogate pair split across two deltas', () => {
    const emoji = '😀';
    expect(through(['a', emoji[0], emoji[1], 'b'])).toBe('a😀b');
  });

  it('turns U+0000 and unpaired surrogates into U+FFFD', () => {
    expect(through(['a\u0000b', '\udc00c', 'd\ud800'])).toBe('a\ufffdb\ufffdcd\ufffd');
    expect(through(['\ud800', 'x'])).toBe('\ufffdx');
  });

  it('always yields storable text, the same as cleaning the whole text at once', () => {
    fc.assert(
      fc.property(fc.array(fc.string({ unit: 'binary' }), { maxLength: 8 }), (deltas) => {
        const out = through(deltas);
        expect(isStorableText(out)).toBe(true);
        expect(out).toBe(cleanedWhole(deltas.join('')));
      }),
    );
  });
});
