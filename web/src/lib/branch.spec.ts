import {
  addChild,
  applyDelta,
  branchView,
  inProgress,
  replaceMessage,
  snippetParts,
  titleFrom,
  type TreeMessage,
} from './branch';

const message = (
  id: number,
  parent_id: number | null,
  sibling_ids?: number[],
  content = `m${id}`,
): TreeMessage => ({ id, parent_id, content, status: 'complete', sibling_ids });

describe('branchView', () => {
  it('places each message among its siblings: ‹ position/count › with its neighbours', () => {
    const view = branchView([message(1, null, [1]), message(4, 1, [2, 4, 9]), message(5, 4, [5])]);
    expect(view.map(({ message: m, ...place }) => ({ id: m.id, ...place }))).toEqual([
      { id: 1, position: 1, count: 1, previousId: null, nextId: null },
      { id: 4, position: 2, count: 3, previousId: 2, nextId: 9 },
      { id: 5, position: 1, count: 1, previousId: null, nextId: null },
    ]);
  });

  it('treats a message without sibling_ids (just posted) as the only one', () => {
    expect(branchView([message(3, null)])[0]).toMatchObject({ position: 1, count: 1 });
  });
});

describe('addChild', () => {
  const branch = [message(1, null, [1]), message(2, 1, [2]), message(3, 2, [3])];

  it('appends to the end of the branch', () => {
    expect(addChild(branch, message(4, 3)).map((m) => [m.id, m.sibling_ids])).toEqual([
      [1, [1]],
      [2, [2]],
      [3, [3]],
      [4, [4]],
    ]);
  });

  it('an edit or a regenerated reply replaces the rest of the branch and counts as a new sibling', () => {
    const edited = addChild(branch, message(7, 1));
    expect(edited.map((m) => [m.id, m.sibling_ids])).toEqual([
      [1, [1]],
      [7, [2, 7]],
    ]);
    expect(branchView(edited)[1]).toMatchObject({ position: 2, count: 2, previousId: 2 });
  });

  it('a new root follows the roots shown', () => {
    expect(addChild(branch, message(8, null)).map((m) => [m.id, m.sibling_ids])).toEqual([
      [8, [1, 8]],
    ]);
  });

  it('refuses a parent that is not on the branch', () => {
    expect(() => addChild(branch, message(9, 42))).toThrow('message 42 is not on the branch');
  });
});

describe('streamed text', () => {
  const branch = [
    message(1, null, [1]),
    { ...message(2, 1, [2], 'Hel'), status: 'in_progress' as const },
  ];

  it('appends a delta to its message only', () => {
    expect(applyDelta(branch, 2, 'lo').map((m) => m.content)).toEqual(['m1', 'Hello']);
  });

  it('a resumed stream that repeats text from an earlier offset does not double it', () => {
    expect(applyDelta(branch, 2, 'llo, world', 2)[1].content).toBe('Hello, world');
  });

  it('offsets count UTF-16 code units, as the stream ids do', () => {
    const emoji = [{ ...message(2, 1, [2], '😀'), status: 'in_progress' as const }];
    expect(applyDelta(emoji, 2, '!', '😀'.length)[0].content).toBe('😀!');
  });

  it('finds the reply in progress, and replaces it by its final copy keeping its siblings', () => {
    expect(inProgress(branch)?.id).toBe(2);
    const done = replaceMessage(branch, {
      ...message(2, 1, undefined, 'Hello'),
      status: 'complete',
    });
    expect(done[1]).toEqual({ ...message(2, 1, [2], 'Hello'), status: 'complete' });
    expect(inProgress(done)).toBeUndefined();
  });
});

describe('titleFrom and snippetParts', () => {
  it('names a chat after the first line of its first message, at most 60 characters', () => {
    expect(titleFrom('  Plan a trip\nto Lisbon')).toBe('Plan a trip');
    const long = titleFrom('x'.repeat(100));
    expect(long).toHaveLength(60);
    expect(long.endsWith('…')).toBe(true);
  });

  it('splits a search snippet into plain text and the matched terms', () => {
    expect(snippetParts('…about [Lisbon] trams and [tram] maps')).toEqual([
      { text: '…about ', match: false },
      { text: 'Lisbon', match: true },
      { text: ' trams and ', match: false },
      { text: 'tram', match: true },
      { text: ' maps', match: false },
    ]);
    expect(snippetParts('no match')).toEqual([{ text: 'no match', match: false }]);
  });
});
