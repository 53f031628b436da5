import { CreateSessionsAndMessages1795557600000 } from './1795557600000-create-sessions-and-messages';
import { SessionTagsArchivePin1795564800000 } from './1795564800000-session-tags-archive-pin';
import { SearchIndex1795575600000 } from './1795575600000-search-index';
import { ExportOrder1795579200000 } from './1795579200000-export-order';

/** Every migration, oldest first. Listed explicitly so the app, the CLI and the tests run the same set. */
export const migrations = [
  CreateSessionsAndMessages1795557600000,
  SessionTagsArchivePin1795564800000,
  SearchIndex1795575600000,
  ExportOrder1795579200000,
];
