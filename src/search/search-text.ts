/**
 * How search sees text, shared by the query parser and the snippets: words are runs of letters,
 * numbers and marks; everything else (punctuation, symbols, emoji, spaces) separates them. Words
 * compare after folding: compatibility decomposition (NFKD: `ﬁ` → `fi`, full-width → ASCII),
 * combining diacritics removed (`é` → `e`), lower case. The databases index the same way (SQLite's
 * unicode61 tokenizer with remove_diacritics; on PostgreSQL `chat_search_vector()` from the search
 * migration, which strips the same ranges of combining marks).
 */
// eslint-disable-next-line no-misleading-character-class -- ranges of combining marks are the point
const DIACRITICS = /[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]/g;
const WORD = /[\p{L}\p{N}\p{M}\p{Co}]+/gu;

export function foldText(text: string): string {
  return text.normalize('NFKD').replace(DIACRITICS, '').toLowerCase();
}

/**
 * PostgreSQL indexes this many code points of a text's folded form, which keeps every tsvector
 * under its 1 MiB limit (the bound is worked out in the search index cap migration). SQLite
 * indexes whole texts.
 */
export const INDEXED_CODE_POINTS = 200_000;

/** The part of `text` PostgreSQL indexes, decomposed and without diacritics (case kept). */
export function indexedText(text: string): string {
  const folded = text.normalize('NFKD').replace(DIACRITICS, '');
  return Array.from(folded).slice(0, INDEXED_CODE_POINTS).join('');
}

/** The folded words of `text`, in order. */
export function searchWords(text: string): string[] {
  return foldText(text).match(WORD) ?? [];
}

export interface WordSpan {
  /** Offsets into the original text (UTF-16 code units, never inside a surrogate pair). */
  start: number;
  end: number;
  folded: string;
}

/** The words of `text` where they stand in it, each with its folded form. */
export function wordSpans(text: string): WordSpan[] {
  const spans: WordSpan[] = [];
  for (const match of text.matchAll(WORD)) {
    spans.push({
      start: match.index,
      end: match.index + match[0].length,
      folded: foldText(match[0]),
    });
  }
  return spans;
}
