import { parseSearchQuery } from './search-query';
import { snippet, SNIPPET_LENGTH } from './snippet';

const cut = (text: string, q: string) => snippet(text, parseSearchQuery(q));

describe('snippet', () => {
  it('wraps every match of every term, keeping the original spelling', () => {
    expect(cut('Crème brûlée and more CRÈME', 'creme brul')).toBe(
      '[Crème] [brûlée] and more [CRÈME]',
    );
  });

  it('wraps a phrase as one match, and not its words alone', () => {
    expect(cut('late in May, we leave late', '"late in may"')).toBe('[late in May], we leave late');
  });

  it('merges overlapping matches', () => {
    expect(cut('new york new yorker', '"new york" york')).toBe('[new york] new [yorker]');
  });

  it('keeps a short text whole, whitespace collapsed', () => {
    expect(cut('  a\n\nb   target\t', 'target')).toBe('a b [target]');
  });

  it('cuts a long text around the first match, at word boundaries, with ellipses', () => {
    const text = `${'alpha beta gamma '.repeat(30)}needle${' delta epsilon'.repeat(30)}`;
    const result = cut(text, 'needle');
    expect(result).toMatch(/^…(alpha|beta|gamma) .*\[needle\] delta .*(delta|epsilon)…$/);
    expect(result.replace(/[[\]…]/g, '').length).toBeLessThanOrEqual(SNIPPET_LENGTH);
    expect(result.replace(/[[\]…]/g, '').length).toBeGreaterThan(SNIPPET_LENGTH - 20);
  });

  it('shows the end of the text when the match is near it', () => {
    const text = `${'word '.repeat(100)}needle at the end`;
    const result = cut(text, 'needle');
    expect(result.endsWith('[needle] at the end')).toBe(true);
    expect(result.startsWith('…word ')).toBe(true);
  });

  it('never splits a surrogate pair', () => {
    const text = `${'😀'.repeat(150)} needle ${'😀'.repeat(150)}`;
    const result = cut(text, 'needle');
    expect(result).toContain('[needle]');
    expect(() => encodeURIComponent(result)).not.toThrow();
  });

  it('shows the beginning, unmarked, when no match is found', () => {
    expect(cut('nothing to see here', 'absent')).toBe('nothing to see here');
  });

  it('keeps a match longer than the snippet whole', () => {
    const long = 'x'.repeat(300);
    expect(cut(`before ${long} after`, 'xxx')).toBe(`before [${long}]…`);
  });
});
