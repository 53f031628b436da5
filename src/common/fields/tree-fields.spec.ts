import { forkedFromProblem, generationProblem } from './tree-fields';

describe('generationProblem', () => {
  const complete = {
    model: 'gpt-x',
    finish_reason: 'stop',
    usage: { prompt_tokens: 12, completion_tokens: 0 },
    error: null,
  };

  it.each([
    ['a finished reply', complete],
    ['a failed one without usage', { model: 'm', finish_reason: null, usage: null, error: 'x' }],
  ])('accepts %s', (_label, value) => {
    expect(generationProblem('generation', value)).toBeNull();
  });

  it.each([
    ['null', null],
    ['an array', [complete]],
    ['a missing key', { model: 'm', finish_reason: null, usage: null }],
    ['an extra key', { ...complete, seed: 1 }],
    ['a model that is no string', { ...complete, model: 7 }],
    ['an error that is an object', { ...complete, error: {} }],
    ['usage with an extra count', { ...complete, usage: { ...complete.usage, total: 12 } }],
  ])('refuses %s, naming the shape', (_label, value) => {
    expect(generationProblem('generation', value)).toMatch(/^generation must be/);
  });

  it.each([
    ['negative', -1],
    ['fractional', 1.5],
    ['a string', '3'],
  ])('refuses %s token counts', (_label, count) => {
    const value = { ...complete, usage: { prompt_tokens: 1, completion_tokens: count } };
    expect(generationProblem('generation', value)).toBe(
      'generation.usage counts must be non-negative integers',
    );
  });

  it('refuses more than 16 KiB', () => {
    expect(generationProblem('generation', { ...complete, error: 'e'.repeat(16 * 1024) })).toBe(
      'generation must be at most 16384 bytes serialized',
    );
  });
});

describe('forkedFromProblem', () => {
  const session_id = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';

  it.each([
    ['a message id', { session_id, message_id: 3 }],
    ['no message (an empty source)', { session_id, message_id: null }],
  ])('accepts %s', (_label, value) => {
    expect(forkedFromProblem('forked_from', value)).toBeNull();
  });

  it.each([
    ['a session id that is no UUID', { session_id: 'abc', message_id: 3 }],
    ['a message id of 0', { session_id, message_id: 0 }],
    ['a message id past the largest', { session_id, message_id: 1e15 }],
    ['a missing message_id', { session_id }],
    ['an extra key', { session_id, message_id: 3, name: 'x' }],
    ['a string', session_id],
  ])('refuses %s', (_label, value) => {
    expect(forkedFromProblem('forked_from', value)).toMatch(/^forked_from must be \{"session_id"/);
  });
});
