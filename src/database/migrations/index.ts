import { CreateSessionsAndMessages1795557600000 } from './1795557600000-create-sessions-and-messages';

/** Every migration, oldest first. Listed explicitly so the app, the CLI and the tests run the same set. */
export const migrations = [CreateSessionsAndMessages1795557600000];
