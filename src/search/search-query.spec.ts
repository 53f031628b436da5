import { parseSearchQuery, toFts5Query, toTsQuery } from './search-query';

describe('parseSearchQuery', () => {
  it.each([
    ['lisbon', [{ words: ['lisbon'], prefix: true }]],
    [
      '  Lisbon   MAY ',
      [
        { words: ['lisbon'], prefix: true },
        { words: ['may'], prefix: true },
      ],
    ],
    [
      'to be',
      [
        { words: ['to'], prefix: false },
        { words: ['be'], prefix: false },
      ],
    ],
    ['"late May"', [{ words: ['late', 'may'], prefix: false }]],
    ['"lisbon"', [{ words: ['lisbon'], prefix: false }]],
    [
      'trip "late may" lisbon',
      [
        { words: ['trip'], prefix: true },
        { words: ['late', 'may'], prefix: false },
        { words: ['lisbon'], prefix: true },
      ],
    ],
    [
      'may "late',
      [
        { words: ['may'], prefix: true },
        { words: ['late'], prefix: true },
      ],
    ],
    [
      'Crème BRÛLÉE',
      [
        { words: ['creme'], prefix: true },
        { words: ['brulee'], prefix: true },
      ],
    ],
    [
      'ﬁle ＦＵＬＬ',
      [
        { words: ['file'], prefix: true },
        { words: ['full'], prefix: true },
      ],
    ],
    ['東京', [{ words: ['東京'], prefix: true }]],
    [
      '(a OR b) AND NOT c*',
      ['a', 'or', 'b', 'and', 'not', 'c'].map((w) => ({ words: [w], prefix: w.length >= 3 })),
    ],
    [
      'NEAR(x y)',
      [
        { words: ['near'], prefix: true },
        { words: ['x'], prefix: false },
        { words: ['y'], prefix: false },
      ],
    ],
    [
      'col:value -minus ^caret',
      ['col', 'value', 'minus', 'caret'].map((w) => ({ words: [w], prefix: true })),
    ],
    ['lisbon Lisbon LISBON', [{ words: ['lisbon'], prefix: true }]],
    ['"" 🎉 !!! ()', []],
  ])('%j', (q, terms) => {
    expect(parseSearchQuery(q)).toEqual(terms);
  });
});

describe('query strings', () => {
  const terms = parseSearchQuery('lisbon "late may" to');

  it('quotes every FTS5 term and marks prefixes', () => {
    expect(toFts5Query(terms)).toBe('"lisbon"* AND "late may" AND "to"');
  });

  it('quotes every tsquery lexeme, with <-> in phrases and :* for prefixes', () => {
    expect(toTsQuery(terms)).toBe("'lisbon':* & ('late' <-> 'may') & ('to')");
  });

  it('escapes quotes should a word ever contain one', () => {
    const odd = [{ words: [`it"s`, `o'neil\\`], prefix: false }];
    expect(toFts5Query(odd)).toBe('"it""s o\'neil\\"');
    expect(toTsQuery(odd)).toBe("('it\"s' <-> 'o''neil\\\\')");
  });
});
