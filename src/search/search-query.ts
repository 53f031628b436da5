import { searchWords } from './search-text';

/**
 * One condition of a search: a single word (matched as a whole word or, from three characters
 * on, as a word's prefix) or a quoted phrase (its words in sequence, each matched whole).
 */
export interface SearchTerm {
  words: string[];
  prefix: boolean;
}

/** Scripts written without spaces: a "word" there is a whole run of text, found by its start. */
const UNSPACED =
  /[\p{sc=Han}\p{sc=Hiragana}\p{sc=Katakana}\p{sc=Hangul}\p{sc=Thai}\p{sc=Lao}\p{sc=Khmer}\p{sc=Myanmar}]/u;
/** Shorter words match only whole words: as prefixes they would match a large part of the index. */
export const MIN_PREFIX_LENGTH = 3;

function matchesAsPrefix(word: string): boolean {
  return [...word].length >= MIN_PREFIX_LENGTH || UNSPACED.test(word);
}

/**
 * `q` as the user typed it → the terms that must all match. Text inside double quotes is a phrase;
 * an unclosed quote is ignored. Nothing else has a meaning: operators, parentheses, `*`, `^`, `:`
 * and `-` are separators like spaces, and `AND`/`OR`/`NOT`/`NEAR` are ordinary words. Repeated
 * terms count once.
 */
export function parseSearchQuery(q: string): SearchTerm[] {
  const parts = q.split('"');
  // An odd number of quotes leaves the last part unclosed: read it as plain words.
  const closed = parts.length % 2 === 1 ? parts.length : parts.length - 1;
  const terms = new Map<string, SearchTerm>();
  parts.forEach((part, i) => {
    const words = searchWords(part);
    if (i % 2 === 1 && i < closed) {
      if (words.length > 0) terms.set(`"${words.join(' ')}"`, { words, prefix: false });
      return;
    }
    for (const word of words) terms.set(word, { words: [word], prefix: matchesAsPrefix(word) });
  });
  return [...terms.values()];
}

/**
 * An FTS5 MATCH expression: every term a double-quoted string (so FTS5 reads it as text, never as
 * syntax), prefix terms followed by `*`, all of them ANDed. Words hold only letters, numbers and
 * marks, so they contain no quote; doubling quotes keeps that true even if the word rules change.
 */
export function toFts5Query(terms: SearchTerm[]): string {
  return terms
    .map((term) => `"${term.words.join(' ').replace(/"/g, '""')}"${term.prefix ? '*' : ''}`)
    .join(' AND ');
}

/** A PostgreSQL tsquery (for `to_tsquery('simple', …)`): quoted lexemes, `<->` within phrases, `:*` for prefixes. */
export function toTsQuery(terms: SearchTerm[]): string {
  const quote = (word: string) => `'${word.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
  return terms
    .map((term) =>
      term.prefix ? `${quote(term.words[0])}:*` : `(${term.words.map(quote).join(' <-> ')})`,
    )
    .join(' & ');
}
