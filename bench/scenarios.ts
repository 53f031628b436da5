import { get, post, type Request } from './load';
import { type Fixture, messagesPath, userMessage } from './seed';

export interface Scenario {
  name: string;
  /** Each connection cycles through these in order. */
  requests: (fixture: Fixture) => Request[];
}

const append = (f: Fixture) => post(messagesPath(f.writeSessionId), userMessage);
const history = (f: Fixture) => get(messagesPath(f.historySessionId));
const list = () => get('/api/v1/sessions');
const getSession = (f: Fixture) => get(`/api/v1/sessions/${f.historySessionId}`);

export const SCENARIOS: Scenario[] = [
  { name: 'append a message', requests: (f) => [append(f)] },
  { name: 'read 200-message history', requests: (f) => [history(f)] },
  { name: 'list sessions (10k, limit 50)', requests: () => [list()] },
  { name: 'get one session', requests: (f) => [getSession(f)] },
  {
    // A fixed cycle rather than random picks, so every run sends the same mix:
    // 40% get-session, 20% history, 20% list, 20% append.
    name: 'mix 80% read / 20% write',
    requests: (f) => [getSession(f), history(f), getSession(f), list(), append(f)],
  },
];
