import { useEffect, useRef, useState } from 'preact/hooks';
import {
  api,
  ApiError,
  type ImportResult,
  nextLink,
  ok,
  type SearchHit,
  send,
  type Session,
} from '../api/client';
import { snippetParts } from '../lib/branch';
import type { Report } from './App';

interface Props {
  selectedId: string | null;
  version: number;
  onOpen: (id: string | null) => void;
  onChanged: () => void;
  onClose: () => void;
  onForgetKey: (() => void) | null;
  report: Report;
}

const PAGE = 50;

export function sessionTitle(session: Pick<Session, 'name'>): string {
  return session.name ?? 'Untitled chat';
}

export function Sidebar({
  selectedId,
  version,
  onOpen,
  onChanged,
  onClose,
  onForgetKey,
  report,
}: Props) {
  const [archived, setArchived] = useState(false);
  const [pinned, setPinned] = useState<Session[]>([]);
  const [others, setOthers] = useState<Session[]>([]);
  const [more, setMore] = useState<string | null>(null);
  const [loaded, setLoaded] = useState(false);
  const [query, setQuery] = useState('');
  const [hits, setHits] = useState<SearchHit[] | null>(null);
  const fileInput = useRef<HTMLInputElement>(null);

  useEffect(() => {
    let stale = false;
    const filter = archived ? 'true' : 'false';
    const list = (pin: 'true' | 'false', limit: number) =>
      api.GET('/api/v1/sessions', { params: { query: { archived: filter, pinned: pin, limit } } });
    (async () => {
      // Pinned first: the list is by recency, so pinned sessions are asked for on their own.
      const [pins, rest] = await Promise.all([list('true', 1000), list('false', PAGE)]);
      const [pinnedPage, otherPage] = [await ok(pins), await ok(rest)];
      if (stale) return;
      setPinned(pinnedPage);
      setOthers(otherPage);
      setMore(nextLink(rest.response));
      setLoaded(true);
    })().catch(report);
    return () => {
      stale = true;
    };
  }, [archived, version, report]);

  useEffect(() => {
    const q = query.trim();
    if (!q) {
      setHits(null);
      return;
    }
    let stale = false;
    const timer = setTimeout(() => {
      ok(
        api.GET('/api/v1/search', {
          params: { query: { q, limit: 20, archived: archived ? 'true' : 'false' } },
        }),
      )
        .then((found) => !stale && setHits(found))
        .catch(report);
    }, 250);
    return () => {
      stale = true;
      clearTimeout(timer);
    };
  }, [query, archived, version, report]);

  async function loadMore() {
    if (!more) return;
    try {
      const response = await send(more);
      const page = (await response.json()) as Session[];
      setOthers((all) => [...all, ...page]);
      setMore(nextLink(response));
    } catch (error) {
      report(error);
    }
  }

  async function importFile(file: File) {
    const ndjson = /\.(ndjson|jsonl)$/i.test(file.name);
    try {
      const response = await send('/api/v1/import', {
        method: 'POST',
        headers: { 'Content-Type': ndjson ? 'application/x-ndjson' : 'application/json' },
        body: await file.text(),
      });
      const result = (await response.json()) as ImportResult;
      const chats = (n: number) => `${n} chat${n === 1 ? '' : 's'}`;
      report(
        `Imported ${chats(result.imported)} from ${file.name}` +
          (result.skipped > 0 ? ` (${chats(result.skipped)} already here)` : '') +
          '.',
        'info',
      );
      onChanged();
      if (result.sessions.length > 0) onOpen(result.sessions[0]);
    } catch (error) {
      report(error instanceof ApiError ? new Error(`Import failed: ${error.message}`) : error);
    }
  }

  const item = (session: Session) => (
    <li key={session.id}>
      <a
        href={`#/s/${encodeURIComponent(session.id)}`}
        class="session-link"
        aria-current={session.id === selectedId ? 'page' : undefined}
        onClick={(event) => {
          event.preventDefault();
          onOpen(session.id);
        }}
      >
        <span class="session-name">{sessionTitle(session)}</span>
        {session.pinned && (
          <span class="badge" role="img" title="Pinned" aria-label="pinned">
            📌
          </span>
        )}
        {session.expires_at && (
          <span class="badge" role="img" title="Temporary chat" aria-label="temporary">
            ⏳
          </span>
        )}
      </a>
    </li>
  );

  return (
    <nav class="sidebar" aria-label="Chats">
      <div class="sidebar-top">
        <button type="button" class="primary" onClick={() => onOpen(null)}>
          + New chat
        </button>
        <button
          type="button"
          class="icon close-menu"
          aria-label="Close chat list"
          onClick={onClose}
        >
          ×
        </button>
      </div>
      <label class="visually-hidden" for="search">
        Search chats
      </label>
      <input
        id="search"
        type="search"
        placeholder="Search chats"
        value={query}
        onInput={(event) => setQuery(event.currentTarget.value)}
      />
      <div class="filters">
        <button
          type="button"
          aria-pressed={archived}
          onClick={() => setArchived((a) => !a)}
          title="Show archived chats instead of the others"
        >
          {archived ? 'Showing archived' : 'Archived'}
        </button>
        <button type="button" onClick={() => fileInput.current?.click()}>
          Import…
        </button>
        <input
          ref={fileInput}
          type="file"
          class="visually-hidden"
          aria-label="Import chats from a file"
          accept=".json,.ndjson,.jsonl,application/json,application/x-ndjson"
          tabIndex={-1}
          onChange={(event) => {
            const file = event.currentTarget.files?.[0];
            event.currentTarget.value = '';
            if (file) void importFile(file);
          }}
        />
      </div>
      {hits !== null ? (
        <section aria-label="Search results">
          <h2>Results</h2>
          {hits.length === 0 && <p class="muted">No chat matches “{query.trim()}”.</p>}
          <ul class="sessions">
            {hits.map((hit) => (
              <li key={`${hit.session.id}-${hit.message?.id ?? 'name'}`}>
                <a
                  href={`#/s/${encodeURIComponent(hit.session.id)}`}
                  class="session-link hit"
                  onClick={(event) => {
                    event.preventDefault();
                    onOpen(hit.session.id);
                  }}
                >
                  <span class="session-name">{sessionTitle(hit.session)}</span>
                  <span class="snippet">
                    {snippetParts(hit.snippet).map((part, i) =>
                      part.match ? <mark key={i}>{part.text}</mark> : part.text,
                    )}
                  </span>
                </a>
              </li>
            ))}
          </ul>
        </section>
      ) : (
        <>
          {pinned.length > 0 && (
            <section aria-label="Pinned chats">
              <h2>Pinned</h2>
              <ul class="sessions">{pinned.map(item)}</ul>
            </section>
          )}
          <section aria-label={archived ? 'Archived chats' : 'Recent chats'}>
            <h2>{archived ? 'Archived' : 'Recent'}</h2>
            {loaded && others.length === 0 && pinned.length === 0 && (
              <p class="muted">{archived ? 'No archived chats.' : 'No chats yet.'}</p>
            )}
            <ul class="sessions">{others.map(item)}</ul>
            {more && (
              <button type="button" class="link" onClick={() => void loadMore()}>
                Show more
              </button>
            )}
          </section>
        </>
      )}
      {onForgetKey && (
        <button type="button" class="link forget-key" onClick={onForgetKey}>
          Forget API key
        </button>
      )}
    </nav>
  );
}
