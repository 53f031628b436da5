/**
 * The conversation as the page shows it: the current branch of the session's tree (root first, as
 * `GET …/messages?branch=current` answers it), each message with its place among its siblings.
 * Pure functions over plain data, so they are unit-tested without a browser.
 */
export interface TreeMessage {
  id: number;
  parent_id: number | null;
  content: string;
  status: 'complete' | 'in_progress' | 'cancelled' | 'failed';
  /** The ids of the messages with the same parent, itself included, oldest first. */
  sibling_ids?: number[];
}

export interface BranchItem<M extends TreeMessage> {
  message: M;
  /** 1-based position among its siblings, and how many there are: `‹ 2/3 ›`. */
  position: number;
  count: number;
  previousId: number | null;
  nextId: number | null;
}

export function branchView<M extends TreeMessage>(branch: readonly M[]): BranchItem<M>[] {
  return branch.map((message) => {
    const siblings = message.sibling_ids?.length ? message.sibling_ids : [message.id];
    const index = Math.max(0, siblings.indexOf(message.id));
    return {
      message,
      position: index + 1,
      count: siblings.length,
      previousId: index > 0 ? siblings[index - 1] : null,
      nextId: index < siblings.length - 1 ? siblings[index + 1] : null,
    };
  });
}

/**
 * The branch after `message` was added under its parent (which must be on the branch, or null for a
 * new root): the path up to the parent, then the message. Its siblings are the ones the branch had
 * at that level plus itself, so `‹ 2/2 ›` shows before the server is asked again.
 */
export function addChild<M extends TreeMessage>(branch: readonly M[], message: M): M[] {
  const parentIndex =
    message.parent_id === null ? -1 : branch.findIndex((m) => m.id === message.parent_id);
  if (message.parent_id !== null && parentIndex === -1) {
    throw new Error(`message ${message.parent_id} is not on the branch`);
  }
  const replaced = branch[parentIndex + 1];
  const earlier = replaced ? (replaced.sibling_ids ?? [replaced.id]) : [];
  return [
    ...branch.slice(0, parentIndex + 1),
    { ...message, sibling_ids: [...earlier.filter((id) => id !== message.id), message.id] },
  ];
}

/** Appends streamed text to one message of the branch; `offset` is where the text starts. */
export function applyDelta<M extends TreeMessage>(
  branch: readonly M[],
  id: number,
  text: string,
  offset?: number,
): M[] {
  return branch.map((m) => {
    if (m.id !== id) return m;
    // A delta that starts before the end we have (a resumed stream) overlaps what is shown.
    const base = offset === undefined ? m.content : m.content.slice(0, offset);
    return { ...m, content: base + text };
  });
}

/** Replaces a message of the branch by a newer copy of it (keeping its siblings). */
export function replaceMessage<M extends TreeMessage>(branch: readonly M[], next: M): M[] {
  return branch.map((m) =>
    m.id === next.id ? { ...next, sibling_ids: next.sibling_ids ?? m.sibling_ids } : m,
  );
}

/** The reply still being written on this branch, if any: the page resumes its stream. */
export function inProgress<M extends TreeMessage>(branch: readonly M[]): M | undefined {
  return branch.find((m) => m.status === 'in_progress');
}

/** A short session name from the first message: its first line, at most 60 characters. */
export function titleFrom(text: string): string {
  const line = text.trim().split('\n')[0].trim();
  return line.length > 60 ? `${line.slice(0, 59).trimEnd()}…` : line;
}

/** Search snippets wrap each matched term in `[` `]`; split so the page can highlight them. */
export function snippetParts(snippet: string): { text: string; match: boolean }[] {
  const parts: { text: string; match: boolean }[] = [];
  const pattern = /\[([^[\]]*)\]/g;
  let last = 0;
  for (const found of snippet.matchAll(pattern)) {
    const at = found.index ?? 0;
    if (at > last) parts.push({ text: snippet.slice(last, at), match: false });
    if (found[1]) parts.push({ text: found[1], match: true });
    last = at + found[0].length;
  }
  if (last < snippet.length) parts.push({ text: snippet.slice(last), match: false });
  return parts;
}
