import { MigrationInterface, QueryRunner } from 'typeorm';
import { withoutStatementTimeout } from './unbounded';

/**
 * PostgreSQL indexes at most the first 200,000 code points of a text's folded form, so that every
 * message the API accepts can be indexed: NFKD expands some characters up to 18 times (U+FDFA;
 * squared katakana such as U+3316 ㌖ → キロメートル), and a tsvector over 1 MiB is refused
 * ("string is too long for tsvector"), which failed the INSERT with a 500.
 *
 * The bound. `to_tsvector` counts, per distinct lexeme, its bytes, at most 1 byte of alignment,
 * 2 bytes for the position count and 2 per position (more occurrences add only positions). After
 * the folding, no ASCII punctuation is left, so the parser's tokens are disjoint runs of letters
 * and digits, each followed by a separator except the last: a token of c code points uses c + 1
 * code points of text and costs at most 4c (a lower-cased code point is at most 4 bytes in UTF-8)
 * + 5 bytes, which is at most 4.5 bytes per code point of text. 200,000 code points therefore cost
 * at most 900,005 bytes, under the 1,048,575 allowed (the worst input constructed, distinct
 * 100-character runs of squared katakana, reaches about 620,000).
 *
 * What is cut: only text whose folded form is over twice the API's 100,000-character limit, i.e.
 * text made mostly of expanding characters (and Korean past about 66,000 syllables, as NFKD splits
 * each syllable into two or three jamo). SQLite keeps indexing whole texts: FTS5 has no such
 * limit, its tokenizer does not apply NFKD (it indexes `㌖` as itself, so the expanded words are
 * not found there anyway), and its SQL cannot compute where PostgreSQL's folded form is cut.
 *
 * Rows indexed before this migration keep their index: they were indexed whole without error.
 * The folding is copied from the search index migration (a migration must not change after it has
 * run); `src/search/search-text.ts` names the cap for code that needs it.
 */
const DIACRITICS = String.raw`[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]`;
const PUNCTUATION = String.raw`[\u0001-\u002f\u003a-\u0040\u005b-\u0060\u007b-\u00bf\u00d7\u00f7\u2000-\u206f\u2e00-\u2e7f\u3000-\u303f]`;

function searchVector(folded: (text: string) => string): string {
  return `CREATE OR REPLACE FUNCTION "chat_search_vector"(input text) RETURNS tsvector
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT to_tsvector('simple'::regconfig, ${folded('input')}) $$`;
}

export class SearchIndexCap1795582800000 implements MigrationInterface {
  name = 'SearchIndexCap1795582800000';

  public async up(queryRunner: QueryRunner): Promise<void> {
    await withoutStatementTimeout(queryRunner);
    if (queryRunner.connection.driver.options.type !== 'postgres') return;
    // Cut before the punctuation pass, which maps one code point to one space: the same text, less work.
    await queryRunner.query(
      searchVector(
        (input) =>
          `regexp_replace(left(regexp_replace(normalize(${input}, NFKD), '${DIACRITICS}', '', 'g'), 200000), '${PUNCTUATION}', ' ', 'g')`,
      ),
    );
  }

  public async down(queryRunner: QueryRunner): Promise<void> {
    await withoutStatementTimeout(queryRunner);
    if (queryRunner.connection.driver.options.type !== 'postgres') return;
    await queryRunner.query(
      searchVector(
        (input) =>
          `regexp_replace(regexp_replace(normalize(${input}, NFKD), '${DIACRITICS}', '', 'g'), '${PUNCTUATION}', ' ', 'g')`,
      ),
    );
  }
}
