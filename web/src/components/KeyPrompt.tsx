import { useState } from 'preact/hooks';

/** AUTH_MODE=api-key: the key is asked once per tab and kept in sessionStorage. */
export function KeyPrompt({ message, onKey }: { message: string; onKey: (key: string) => void }) {
  const [key, setKey] = useState('');
  return (
    <main class="key-prompt">
      <form
        onSubmit={(event) => {
          event.preventDefault();
          if (key.trim()) onKey(key.trim());
        }}
      >
        <h1>API key needed</h1>
        <p>
          This server asks for an API key. An operator creates one with{' '}
          <code>npm run apikey -- create --owner &lt;name&gt;</code>. It is kept in this tab only.
        </p>
        {message && (
          <p class="notice error" role="alert">
            {message}
          </p>
        )}
        <label for="api-key">API key</label>
        <input
          id="api-key"
          type="password"
          autocomplete="off"
          value={key}
          onInput={(event) => setKey(event.currentTarget.value)}
          autoFocus
        />
        <button type="submit" class="primary">
          Continue
        </button>
      </form>
    </main>
  );
}
