import { jsonDepth } from './json-bounds';

describe('jsonDepth', () => {
  it.each([
    [1, 0],
    ['x', 0],
    [null, 0],
    [{}, 1],
    [[], 1],
    [{ a: 1, b: [1, 2] }, 2],
    [{ a: { b: { c: {} } } }, 4],
    [[[[[]]]], 4],
  ])('measures %j as %i levels', (value, depth) => {
    expect(jsonDepth(value)).toBe(depth);
  });

  it('measures a value far deeper than the stack allows, and can stop early', () => {
    const deep = JSON.parse(`${'['.repeat(200_000)}${']'.repeat(200_000)}`) as unknown;
    expect(jsonDepth(deep)).toBe(200_000);
    expect(jsonDepth(deep, 32)).toBe(33);
  });
});
