import fc from 'fast-check';
import { type PathMessage, selectPrompt } from './prompt';

const done = (role: PathMessage['role'], content: string): PathMessage => ({
  role,
  content,
  status: 'complete',
});

/** The contract read literally, one message at a time. */
function reference(path: ReadonlyArray<PathMessage>, window: number) {
  const eligible: PathMessage[] = [];
  for (const m of path) {
    if ((m.status === 'complete' || m.status === 'cancelled') && m.content.length > 0) {
      eligible.push(m);
    }
  }
  const newest: PathMessage[] = [];
  for (let i = eligible.length - 1; i >= 0 && newest.length < window; i--) {
    newest.unshift(eligible[i]);
  }
  const firstSystem = eligible.find((m) => m.role === 'system');
  const prompt = firstSystem && !newest.includes(firstSystem) ? [firstSystem, ...newest] : newest;
  return prompt.map((m) => ({ role: m.role, content: m.content }));
}

describe('selectPrompt', () => {
  it('is empty for an empty path', () => {
    expect(selectPrompt([], 50)).toEqual([]);
  });

  it('keeps the whole path in order, roles as they are, when it fits the window', () => {
    const path = [done('system', 'be brief'), done('user', 'hi'), done('assistant', 'hello')];
    expect(selectPrompt(path, 3)).toEqual([
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'hi' },
      { role: 'assistant', content: 'hello' },
    ]);
  });

  it('keeps only the newest messages of a longer path', () => {
    const path = ['a', 'b', 'c', 'd'].map((c, i) => done(i % 2 ? 'assistant' : 'user', c));
    expect(selectPrompt(path, 2)).toEqual([
      { role: 'user', content: 'c' },
      { role: 'assistant', content: 'd' },
    ]);
  });

  it('with a window of 1 sends the newest message, and the system message before it', () => {
    expect(selectPrompt([done('user', 'a'), done('user', 'b')], 1)).toEqual([
      { role: 'user', content: 'b' },
    ]);
    expect(selectPrompt([done('system', 's'), done('user', 'a'), done('user', 'b')], 1)).toEqual([
      { role: 'system', content: 's' },
      { role: 'user', content: 'b' },
    ]);
  });

  it('does not repeat a system message that is inside the window', () => {
    const path = [done('user', 'a'), done('system', 's'), done('user', 'b')];
    expect(selectPrompt(path, 2)).toEqual([
      { role: 'system', content: 's' },
      { role: 'user', content: 'b' },
    ]);
  });

  it('brings back only the first system message, and keeps later ones only inside the window', () => {
    const path = [
      done('system', 's1'),
      done('user', 'a'),
      done('system', 's2'),
      done('user', 'b'),
      done('user', 'c'),
    ];
    expect(selectPrompt(path, 2)).toEqual([
      { role: 'system', content: 's1' },
      { role: 'user', content: 'b' },
      { role: 'user', content: 'c' },
    ]);
  });

  it('skips failed, in-progress and empty messages, and keeps cancelled ones', () => {
    const path: PathMessage[] = [
      { role: 'system', content: 'broken', status: 'failed' },
      done('user', 'a'),
      { role: 'assistant', content: 'partial', status: 'failed' },
      { role: 'assistant', content: 'half', status: 'cancelled' },
      { role: 'assistant', content: '', status: 'cancelled' },
      done('user', ''),
      { role: 'assistant', content: 'still going', status: 'in_progress' },
      done('user', 'b'),
    ];
    expect(selectPrompt(path, 10)).toEqual([
      { role: 'user', content: 'a' },
      { role: 'assistant', content: 'half' },
      { role: 'user', content: 'b' },
    ]);
    // Skipped messages take no place in the window.
    expect(selectPrompt(path, 2)).toEqual([
      { role: 'assistant', content: 'half' },
      { role: 'user', content: 'b' },
    ]);
  });

  it('brings back the first eligible system message when an earlier one failed', () => {
    const path: PathMessage[] = [
      { role: 'system', content: 'lost', status: 'failed' },
      done('system', 'kept'),
      done('user', 'a'),
      done('user', 'b'),
    ];
    expect(selectPrompt(path, 1)).toEqual([
      { role: 'system', content: 'kept' },
      { role: 'user', content: 'b' },
    ]);
  });

  it('sends no extra fields and does not change its input', () => {
    const path = [done('user', 'a')];
    const copy = structuredClone(path);
    const [only] = selectPrompt(path, 5);
    expect(Object.keys(only).sort()).toEqual(['content', 'role']);
    expect(path).toEqual(copy);
  });

  it('agrees with the contract read literally', () => {
    const message = fc.record({
      role: fc.constantFrom('user' as const, 'assistant' as const, 'system' as const),
      // Few distinct texts, so equal messages at different places are common.
      content: fc.constantFrom('', 'a', 'b', 'system text'),
      status: fc.constantFrom(
        'complete' as const,
        'in_progress' as const,
        'cancelled' as const,
        'failed' as const,
      ),
    });
    fc.assert(
      fc.property(
        fc.array(message, { maxLength: 40 }),
        fc.integer({ min: 1, max: 45 }),
        (path, w) => {
          const prompt = selectPrompt(path, w);
          expect(prompt).toEqual(reference(path, w));
          expect(prompt.length).toBeLessThanOrEqual(w + 1);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
