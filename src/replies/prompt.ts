export interface PromptMessage {
  role: 'user' | 'assistant' | 'system';
  content: string;
}

export interface PathMessage {
  role: 'user' | 'assistant' | 'system';
  content: string;
  status: 'complete' | 'in_progress' | 'cancelled' | 'failed';
}

/** Whether a message of the path may be sent: `complete` or `cancelled`, with text. */
export function usableInPrompt(m: PathMessage): boolean {
  return (m.status === 'complete' || m.status === 'cancelled') && m.content !== '';
}

/**
 * The prompt for a reply, as the contract selects it from `path` (root first, ending at the parent):
 * the messages that are `complete` or `cancelled` with non-empty content, the newest `window` of them,
 * plus the first eligible `system` message, in front, when it fell outside that window (it usually
 * holds the instructions the whole conversation relies on). Order is kept; roles pass through.
 * Retrieved context (the session's `rag_document_ids`) will be added here.
 */
export function selectPrompt(path: ReadonlyArray<PathMessage>, window: number): PromptMessage[] {
  const eligible = path.filter(usableInPrompt);
  const start = Math.max(0, eligible.length - Math.max(0, window));
  const selected = eligible.slice(start);
  const system = eligible.findIndex((m) => m.role === 'system');
  if (system !== -1 && system < start) selected.unshift(eligible[system]);
  return selected.map(({ role, content }) => ({ role, content }));
}
