import { useCallback, useEffect, useState } from 'preact/hooks';
import { auth } from '../api/client';
import { isAbort } from '../lib/replies';
import { Conversation } from './Conversation';
import { KeyPrompt } from './KeyPrompt';
import { Sidebar } from './Sidebar';

export interface Notice {
  id: number;
  text: string;
  kind: 'error' | 'info';
}

/** Reports an error or a piece of news to the person: every failure ends up on screen. */
export type Report = (what: unknown, kind?: Notice['kind']) => void;

function sessionFromHash(): string | null {
  const found = /^#\/s\/([^/?#]+)/.exec(location.hash);
  return found ? decodeURIComponent(found[1]) : null;
}

let noticeIds = 0;

export function App() {
  const [sessionId, setSessionId] = useState(sessionFromHash);
  const [keyNeeded, setKeyNeeded] = useState<string | null>(null);
  const [notices, setNotices] = useState<Notice[]>([]);
  // Bumped when something the sidebar lists changed, or a key was entered.
  const [version, setVersion] = useState(0);
  const [menuOpen, setMenuOpen] = useState(false);
  // Bumped when a key is entered: the conversation loads again with it.
  const [keyVersion, setKeyVersion] = useState(0);

  const report = useCallback<Report>((what, kind = 'error') => {
    if (isAbort(what)) return;
    const text = what instanceof Error ? what.message : String(what);
    // A 401 is answered by the key prompt, not by a notice.
    if (keyNeededNow) return;
    setNotices((all) => [...all.slice(-3), { id: ++noticeIds, text, kind }]);
  }, []);

  useEffect(() => {
    auth.onUnauthorized = (message) => {
      keyNeededNow = true;
      setKeyNeeded(auth.key ? `That key was refused. ${message}` : '');
    };
    const onHash = () => setSessionId(sessionFromHash());
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);

  const open = useCallback((id: string | null) => {
    location.hash = id ? `#/s/${encodeURIComponent(id)}` : '#/';
    setSessionId(id);
    setMenuOpen(false);
  }, []);
  const changed = useCallback(() => setVersion((v) => v + 1), []);

  if (keyNeeded !== null) {
    return (
      <KeyPrompt
        message={keyNeeded}
        onKey={(key) => {
          auth.set(key);
          keyNeededNow = false;
          setKeyNeeded(null);
          setNotices([]);
          changed();
          setKeyVersion((v) => v + 1);
        }}
      />
    );
  }

  return (
    <div class={`app${menuOpen ? ' menu-open' : ''}`}>
      <Sidebar
        selectedId={sessionId}
        version={version}
        onOpen={open}
        onChanged={changed}
        report={report}
        onClose={() => setMenuOpen(false)}
        onForgetKey={
          auth.key
            ? () => {
                auth.set(null);
                location.reload();
              }
            : null
        }
      />
      <main class="main">
        <Conversation
          key={`${keyVersion}`}
          sessionId={sessionId}
          onOpen={open}
          onChanged={changed}
          report={report}
          onMenu={() => setMenuOpen(true)}
        />
        <div class="notices" role="alert" aria-live="assertive">
          {notices.map((notice) => (
            <div class={`notice ${notice.kind}`} key={notice.id}>
              <span>{notice.text}</span>
              <button
                type="button"
                class="icon"
                aria-label="Dismiss"
                onClick={() => setNotices((all) => all.filter((n) => n.id !== notice.id))}
              >
                ×
              </button>
            </div>
          ))}
        </div>
      </main>
    </div>
  );
}

// Set synchronously by a 401, so the notices its request also reports are not shown behind the prompt.
let keyNeededNow = false;
