import type { SearchTerm } from './search-query';
import { wordSpans, type WordSpan } from './search-text';

/** About how long a snippet is, in UTF-16 code units, before brackets and ellipses. */
export const SNIPPET_LENGTH = 200;
/** How much text before the first match a snippet keeps, when it has to cut. */
const CONTEXT_BEFORE = 60;

interface Range {
  start: number;
  end: number;
}

/** Where the terms match in the text: words starting with a prefix term, runs of words equal to a phrase. */
function matchRanges(spans: WordSpan[], terms: SearchTerm[]): Range[] {
  const ranges: Range[] = [];
  spans.forEach((span, i) => {
    for (const { words, prefix } of terms) {
      if (prefix) {
        if (span.folded.startsWith(words[0])) ranges.push({ start: span.start, end: span.end });
      } else if (words.every((word, j) => spans[i + j]?.folded === word)) {
        ranges.push({ start: span.start, end: spans[i + words.length - 1].end });
      }
    }
  });
  ranges.sort((a, b) => a.start - b.start || b.end - a.end);
  const merged: Range[] = [];
  for (const range of ranges) {
    const last = merged.at(-1);
    if (last && range.start < last.end) last.end = Math.max(last.end, range.end);
    else merged.push({ ...range });
  }
  return merged;
}

const isLowSurrogate = (code: number) => code >= 0xdc00 && code <= 0xdfff;

/**
 * The text around the first match, about SNIPPET_LENGTH long, cut at word boundaries, with each
 * match wrapped in `[` `]`, `…` where text was cut, and whitespace runs shown as one space.
 * Computed here from the stored text rather than by the database, so SQLite and PostgreSQL give
 * the same snippet; a text whose matches are not found here (the databases tokenize a few exotic
 * characters differently) gets its beginning, unmarked.
 */
export function snippet(text: string, terms: SearchTerm[]): string {
  const spans = wordSpans(text);
  const ranges = matchRanges(spans, terms);
  const first = ranges[0] ?? { start: 0, end: 0 };
  let start = 0;
  let end = text.length;
  if (text.length > SNIPPET_LENGTH) {
    start = Math.max(0, Math.min(first.start - CONTEXT_BEFORE, text.length - SNIPPET_LENGTH));
    // Do not start inside a word (or a surrogate pair): begin after it.
    const cut = spans.find((s) => s.start < start && start < s.end);
    if (cut) start = Math.min(cut.end, first.start);
    if (start < text.length && isLowSurrogate(text.charCodeAt(start))) start++;
    while (start < first.start && /\s/.test(text[start])) start++;
    end = Math.max(first.end, Math.min(text.length, start + SNIPPET_LENGTH));
    const cutEnd = spans.find((s) => s.start < end && end < s.end);
    if (cutEnd) end = Math.max(cutEnd.start, first.end);
    if (end < text.length && isLowSurrogate(text.charCodeAt(end))) end--;
    while (end > first.end && /\s/.test(text[end - 1])) end--;
  }
  let out = start > 0 ? '…' : '';
  let position = start;
  for (const range of ranges) {
    if (range.start < start || range.end > end) continue;
    out += `${text.slice(position, range.start)}[${text.slice(range.start, range.end)}]`;
    position = range.end;
  }
  out += text.slice(position, end) + (end < text.length ? '…' : '');
  return out.replace(/\s+/g, ' ').trim();
}
