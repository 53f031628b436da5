import { useCallback, useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, ApiError, type ChatMessage, ok, send, type Session } from '../api/client';
import {
  addChild,
  applyDelta,
  type BranchItem,
  branchView,
  inProgress,
  replaceMessage,
  titleFrom,
} from '../lib/branch';
import { renderMarkdown } from '../lib/markdown';
import { isAbort, type ReplyHandlers, resumeReply, startReply } from '../lib/replies';
import type { Report } from './App';
import { sessionTitle } from './Sidebar';

interface Props {
  sessionId: string | null;
  onOpen: (id: string | null) => void;
  onChanged: () => void;
  onMenu: () => void;
  report: Report;
}

const TEMPORARY_HOURS = 24;
const BRANCH_LIMIT = 1000;

const path = (id: string) => ({ params: { path: { id } } });

export function Conversation({ sessionId, onOpen, onChanged, onMenu, report }: Props) {
  const [session, setSession] = useState<Session | null>(null);
  const [branch, setBranch] = useState<ChatMessage[]>([]);
  const [loading, setLoading] = useState(false);
  const [streamingId, setStreamingId] = useState<number | null>(null);
  const [busy, setBusy] = useState(false);
  const [repliesOff, setRepliesOff] = useState<string | null>(null);
  const [text, setText] = useState('');
  const [temporary, setTemporary] = useState(false);
  const [editingId, setEditingId] = useState<number | null>(null);
  const [renaming, setRenaming] = useState(false);
  const reading = useRef<AbortController | null>(null);
  // The session this view created itself: opening it must not reload (and stop) its first reply.
  const createdHere = useRef<string | null>(null);
  const composer = useRef<HTMLTextAreaElement>(null);
  const confirmDelete = useRef<HTMLDialogElement>(null);
  const endOfChat = useRef<HTMLDivElement>(null);

  const refresh = useCallback(async (id: string) => {
    const [current, messages] = await Promise.all([
      ok(api.GET('/api/v1/sessions/{id}', path(id))),
      ok(
        api.GET('/api/v1/sessions/{id}/messages', {
          params: {
            path: { id },
            query: { branch: 'current', order: 'desc', limit: BRANCH_LIMIT },
          },
        }),
      ),
    ]);
    setSession(current);
    setBranch(messages.reverse());
    return messages;
  }, []);

  /**
   * Follows a reply to its end: `first` opens its stream (a new reply, or one already stored, given
   * as `known`); if the connection breaks before `done`, the stream is resumed from the text shown.
   */
  const follow = useCallback(
    async (
      id: string,
      first: (handlers: ReplyHandlers, signal: AbortSignal) => Promise<unknown>,
      known?: ChatMessage,
    ) => {
      reading.current?.abort();
      const controller = new AbortController();
      reading.current = controller;
      let replyId = known?.id ?? null;
      let offset = known?.content.length ?? 0;
      let finished = false;
      setStreamingId(replyId);
      const handlers: ReplyHandlers = {
        onMessage(message) {
          replyId = message.id;
          setStreamingId(message.id);
          setBranch((b) => addChild(b, message));
        },
        onDelta(delta, from) {
          offset = from + delta.length;
          const target = replyId;
          if (target !== null) setBranch((b) => applyDelta(b, target, delta, from));
        },
        onDone(message) {
          finished = true;
          setBranch((b) => replaceMessage(b, message));
          setStreamingId(null);
        },
      };
      try {
        await first(handlers, controller.signal);
        for (let attempt = 0; !finished && replyId !== null && attempt < 5; attempt++) {
          await new Promise((resolve) => setTimeout(resolve, 1000));
          if (controller.signal.aborted) return;
          await resumeReply(id, replyId, offset, handlers, controller.signal);
        }
      } catch (error) {
        if (isAbort(error)) return;
        if (error instanceof ApiError && error.status === 503) {
          setRepliesOff(error.problem.detail ?? error.message);
        } else report(error);
      } finally {
        if (reading.current === controller) {
          reading.current = null;
          setStreamingId(null);
        }
      }
      if (!controller.signal.aborted) {
        await refresh(id).catch(report);
        onChanged();
      }
    },
    [refresh, report, onChanged],
  );

  const reply = useCallback(
    (id: string, parentId: number) =>
      follow(id, (handlers, signal) => startReply(id, parentId, handlers, signal)),
    [follow],
  );

  useEffect(() => {
    setEditingId(null);
    setRenaming(false);
    setRepliesOff(null);
    if (sessionId === null) {
      reading.current?.abort();
      setSession(null);
      setBranch([]);
      composer.current?.focus();
      return;
    }
    if (createdHere.current === sessionId) {
      // Only this once: opened again later (back, or from the list), it loads as any other chat.
      createdHere.current = null;
      return;
    }
    reading.current?.abort();
    setLoading(true);
    let stale = false;
    refresh(sessionId)
      .then((messages) => {
        if (stale) return;
        const live = inProgress(messages);
        // A reply still being written (the page was reloaded, or opened elsewhere): read the rest.
        if (live) {
          void follow(
            sessionId,
            (handlers, signal) =>
              resumeReply(sessionId, live.id, live.content.length, handlers, signal),
            live,
          );
        }
      })
      .catch((error: unknown) => {
        if (!stale) {
          setSession(null);
          setBranch([]);
          report(error);
        }
      })
      .finally(() => !stale && setLoading(false));
    return () => {
      stale = true;
    };
  }, [sessionId, refresh, follow, report]);

  useEffect(() => () => reading.current?.abort(), []);

  // A version switch replaces the message shown, buttons and all: the focus follows to the new one.
  const refocus = useRef<{ id: number; label: string } | null>(null);

  useEffect(() => {
    endOfChat.current?.scrollIntoView({ block: 'end' });
    const wanted = refocus.current;
    refocus.current = null;
    if (!wanted) return;
    const buttons = [
      ...document.querySelectorAll<HTMLButtonElement>(
        `[data-message-id="${wanted.id}"] .versions button`,
      ),
    ].filter((button) => !button.disabled);
    (buttons.find((b) => b.getAttribute('aria-label') === wanted.label) ?? buttons[0])?.focus();
  }, [branch]);

  const stop = useCallback(async () => {
    if (streamingId === null || !session) return;
    try {
      await ok(
        api.POST('/api/v1/sessions/{id}/messages/{message_id}/cancel', {
          params: { path: { id: session.id, message_id: streamingId } },
        }),
      );
    } catch (error) {
      // 409: it ended on its own meanwhile; its stream says how.
      if (!(error instanceof ApiError && error.status === 409)) report(error);
    }
  }, [streamingId, session, report]);

  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      if (event.key === 'Escape' && streamingId !== null) {
        event.preventDefault();
        void stop();
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [streamingId, stop]);

  /** Stores a message (a new branch when `parentId` is not the last shown) and asks for a reply. */
  async function post(content: string, parentId: number | null) {
    setBusy(true);
    try {
      let id = session?.id;
      if (!id) {
        const created = await ok(
          api.POST('/api/v1/sessions', {
            body: {
              name: titleFrom(content) || undefined,
              expires_at: temporary
                ? new Date(Date.now() + TEMPORARY_HOURS * 3600_000).toISOString()
                : undefined,
            },
          }),
        );
        id = created.id;
        createdHere.current = id;
        setSession(created);
        onOpen(id);
      }
      const message = await ok(
        api.POST('/api/v1/sessions/{id}/messages', {
          ...path(id),
          body: { content, parent_id: parentId },
        }),
      );
      setBranch((b) => addChild(b, message));
      setSession((s) => s && { ...s, current_message_id: message.id });
      setText('');
      setEditingId(null);
      onChanged();
      setBusy(false);
      await reply(id, message.id);
    } catch (error) {
      report(error);
    } finally {
      setBusy(false);
    }
  }

  async function switchTo(messageId: number) {
    if (!session) return;
    const pressed = document.activeElement;
    const label = pressed?.closest('.versions') ? pressed.getAttribute('aria-label') : null;
    try {
      await ok(
        api.PATCH('/api/v1/sessions/{id}', {
          ...path(session.id),
          body: { current_message_id: messageId },
        }),
      );
      if (label) refocus.current = { id: messageId, label };
      await refresh(session.id);
    } catch (error) {
      report(error);
    }
  }

  async function update(body: { name?: string | null; pinned?: boolean; archived?: boolean }) {
    if (!session) return;
    try {
      setSession(await ok(api.PATCH('/api/v1/sessions/{id}', { ...path(session.id), body })));
      onChanged();
    } catch (error) {
      report(error);
    }
  }

  async function fork(messageId: number) {
    if (!session) return;
    try {
      const forked = await ok(
        api.POST('/api/v1/sessions/{id}/fork', {
          ...path(session.id),
          body: { message_id: messageId },
        }),
      );
      onChanged();
      onOpen(forked.id);
      report(`Forked into a new chat: “${sessionTitle(forked)}”.`, 'info');
    } catch (error) {
      report(error);
    }
  }

  async function exportAs(format: 'json' | 'markdown') {
    if (!session) return;
    try {
      const response = await send(
        `/api/v1/sessions/${encodeURIComponent(session.id)}/export?format=${format}`,
      );
      const disposition = response.headers.get('Content-Disposition') ?? '';
      const name =
        /filename="([^"]+)"/.exec(disposition)?.[1] ??
        `${session.id}.${format === 'json' ? 'json' : 'md'}`;
      const url = URL.createObjectURL(await response.blob());
      const link = document.createElement('a');
      link.href = url;
      link.download = name;
      link.click();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (error) {
      report(error);
    }
  }

  async function remove() {
    if (!session) return;
    try {
      reading.current?.abort();
      await ok(api.DELETE('/api/v1/sessions/{id}', path(session.id)));
      report(`Deleted “${sessionTitle(session)}”.`, 'info');
      onChanged();
      onOpen(null);
    } catch (error) {
      report(error);
    }
  }

  const items = useMemo(() => branchView(branch), [branch]);
  const last = branch.at(-1) ?? null;
  const streaming = streamingId !== null;

  return (
    <div class="conversation">
      <header class="conversation-header">
        <button type="button" class="icon menu-button" aria-label="Show chats" onClick={onMenu}>
          ☰
        </button>
        {session && renaming ? (
          <RenameForm
            name={session.name ?? ''}
            onDone={(name) => {
              setRenaming(false);
              if (name !== null) void update({ name: name.trim() || null });
            }}
          />
        ) : (
          <h1>
            {session ? sessionTitle(session) : sessionId && loading ? 'Loading…' : 'New chat'}
          </h1>
        )}
        {session?.expires_at && (
          <span
            class="badge temporary"
            title={`Deleted at ${new Date(session.expires_at).toLocaleString()}`}
          >
            Temporary
          </span>
        )}
        {session && !renaming && (
          <div class="actions" role="toolbar" aria-label="Chat actions">
            <button type="button" onClick={() => setRenaming(true)}>
              Rename
            </button>
            <button
              type="button"
              aria-pressed={session.pinned}
              onClick={() => void update({ pinned: !session.pinned })}
            >
              {session.pinned ? 'Unpin' : 'Pin'}
            </button>
            <button type="button" onClick={() => void update({ archived: !session.archived })}>
              {session.archived ? 'Unarchive' : 'Archive'}
            </button>
            <button type="button" onClick={() => void exportAs('json')}>
              Export JSON
            </button>
            <button type="button" onClick={() => void exportAs('markdown')}>
              Export Markdown
            </button>
            <button type="button" class="danger" onClick={() => confirmDelete.current?.showModal()}>
              Delete
            </button>
          </div>
        )}
      </header>

      <section class="messages" aria-label="Messages" aria-busy={streaming}>
        {!session && !sessionId && (
          <div class="empty">
            <h2>What’s on your mind?</h2>
            <p class="muted">Your chats are stored by this server. Nothing leaves it.</p>
          </div>
        )}
        {items.map((item) => (
          <MessageView
            key={item.message.id}
            item={item}
            editing={editingId === item.message.id}
            disabled={streaming || busy}
            onSwitch={(id) => void switchTo(id)}
            onEdit={() => setEditingId(item.message.id)}
            onCancelEdit={() => setEditingId(null)}
            onSubmitEdit={(content) => void post(content, item.message.parent_id)}
            onRegenerate={() =>
              session &&
              item.message.parent_id !== null &&
              void reply(session.id, item.message.parent_id)
            }
            onFork={() => void fork(item.message.id)}
          />
        ))}
        {repliesOff && (
          <p class="notice info" role="status">
            Your message is saved. Replies from a language model are off on this server:{' '}
            {repliesOff}
          </p>
        )}
        <div ref={endOfChat} />
      </section>

      <form
        class="composer"
        onSubmit={(event) => {
          event.preventDefault();
          if (text.trim() && !busy && !streaming) void post(text, last?.id ?? null);
        }}
      >
        {!sessionId && (
          <label class="temporary-toggle">
            <input
              type="checkbox"
              checked={temporary}
              onChange={(event) => setTemporary(event.currentTarget.checked)}
            />
            Temporary chat (deleted after {TEMPORARY_HOURS} hours)
          </label>
        )}
        <div class="composer-row">
          <label class="visually-hidden" for="composer">
            Message
          </label>
          <textarea
            id="composer"
            ref={composer}
            rows={2}
            placeholder="Message (Enter sends, Shift+Enter for a new line)"
            value={text}
            onInput={(event) => setText(event.currentTarget.value)}
            onKeyDown={(event) => {
              if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
                event.preventDefault();
                event.currentTarget.form?.requestSubmit();
              }
            }}
          />
          {streaming ? (
            <button type="button" class="danger" onClick={() => void stop()}>
              Stop
            </button>
          ) : (
            <button type="submit" class="primary" disabled={busy || !text.trim()}>
              Send
            </button>
          )}
        </div>
      </form>

      <dialog ref={confirmDelete} aria-labelledby="delete-title">
        <form
          method="dialog"
          onSubmit={(event) => {
            const submitter = (event as SubmitEvent).submitter as HTMLButtonElement | null;
            if (submitter?.value === 'delete') void remove();
          }}
        >
          <h2 id="delete-title">Delete this chat?</h2>
          <p>
            “{session ? sessionTitle(session) : ''}” and all its messages will be deleted. This
            cannot be undone.
          </p>
          <div class="dialog-buttons">
            <button value="cancel" autoFocus>
              Cancel
            </button>
            <button value="delete" class="danger">
              Delete
            </button>
          </div>
        </form>
      </dialog>
    </div>
  );
}

function RenameForm({ name, onDone }: { name: string; onDone: (name: string | null) => void }) {
  const [value, setValue] = useState(name);
  return (
    <form
      class="rename"
      onSubmit={(event) => {
        event.preventDefault();
        onDone(value);
      }}
    >
      <label class="visually-hidden" for="rename">
        Chat name
      </label>
      <input
        id="rename"
        value={value}
        maxLength={200}
        autoFocus
        onInput={(event) => setValue(event.currentTarget.value)}
        onKeyDown={(event) => event.key === 'Escape' && onDone(null)}
      />
      <button type="submit" class="primary">
        Save
      </button>
      <button type="button" onClick={() => onDone(null)}>
        Cancel
      </button>
    </form>
  );
}

const ROLE_LABELS = { user: 'You', assistant: 'Assistant', system: 'System' } as const;
const STATUS_LABELS = {
  in_progress: 'Writing…',
  cancelled: 'Stopped',
  failed: 'Failed',
  complete: '',
};

interface MessageProps {
  item: BranchItem<ChatMessage>;
  editing: boolean;
  disabled: boolean;
  onSwitch: (id: number) => void;
  onEdit: () => void;
  onCancelEdit: () => void;
  onSubmitEdit: (content: string) => void;
  onRegenerate: () => void;
  onFork: () => void;
}

function MessageView({ item, editing, disabled, ...on }: MessageProps) {
  const { message } = item;
  const html = useMemo(() => renderMarkdown(message.content), [message.content]);
  const [draft, setDraft] = useState(message.content);
  const role = ROLE_LABELS[message.role];
  const live = message.status === 'in_progress';
  return (
    <article
      class={`message ${message.role} ${message.status}`}
      aria-label={`${role} message`}
      data-message-id={message.id}
    >
      <header>
        <span class="role">{role}</span>
        {STATUS_LABELS[message.status] && (
          <span class="status">{STATUS_LABELS[message.status]}</span>
        )}
      </header>
      {editing ? (
        <form
          class="edit"
          onSubmit={(event) => {
            event.preventDefault();
            if (draft.trim()) on.onSubmitEdit(draft);
          }}
        >
          <label class="visually-hidden" for={`edit-${message.id}`}>
            Edit message
          </label>
          <textarea
            id={`edit-${message.id}`}
            value={draft}
            autoFocus
            rows={3}
            onInput={(event) => setDraft(event.currentTarget.value)}
            onKeyDown={(event) => {
              if (event.key === 'Escape') on.onCancelEdit();
              if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
                event.preventDefault();
                event.currentTarget.form?.requestSubmit();
              }
            }}
          />
          <div class="edit-buttons">
            <button type="submit" class="primary" disabled={disabled || !draft.trim()}>
              Save and send
            </button>
            <button type="button" onClick={on.onCancelEdit}>
              Cancel
            </button>
          </div>
        </form>
      ) : (
        <div class="content" dangerouslySetInnerHTML={{ __html: html }} />
      )}
      {live && !message.content && (
        <p class="typing" aria-label="The assistant is writing">
          …
        </p>
      )}
      {message.status === 'failed' && message.generation?.error && (
        <p class="generation-error">{message.generation.error}</p>
      )}
      {!editing && (
        <footer>
          {item.count > 1 && (
            <span class="versions" role="group" aria-label="Versions">
              <button
                type="button"
                class="icon"
                aria-label="Previous version"
                disabled={disabled || item.previousId === null}
                onClick={() => item.previousId !== null && on.onSwitch(item.previousId)}
              >
                ‹
              </button>
              <span class="position">
                {item.position}/{item.count}
              </span>
              <button
                type="button"
                class="icon"
                aria-label="Next version"
                disabled={disabled || item.nextId === null}
                onClick={() => item.nextId !== null && on.onSwitch(item.nextId)}
              >
                ›
              </button>
            </span>
          )}
          {message.role === 'user' && (
            <button type="button" class="link" disabled={disabled} onClick={on.onEdit}>
              Edit
            </button>
          )}
          {message.role === 'assistant' && message.parent_id !== null && (
            <button type="button" class="link" disabled={disabled} onClick={on.onRegenerate}>
              Regenerate
            </button>
          )}
          <button type="button" class="link" disabled={disabled || live} onClick={on.onFork}>
            Fork from here
          </button>
        </footer>
      )}
    </article>
  );
}
