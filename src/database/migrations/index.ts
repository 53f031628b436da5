import { CreateSessionsAndMessages1795557600000 } from './1795557600000-create-sessions-and-messages';
import { SessionTagsArchivePin1795564800000 } from './1795564800000-session-tags-archive-pin';
import { OwnersApiKeysIdempotency1795568400000 } from './1795568400000-owners-api-keys-idempotency';
import { SessionCounts1795570200000 } from './1795570200000-session-counts';
import { SearchIndex1795575600000 } from './1795575600000-search-index';
import { ExportOrder1795579200000 } from './1795579200000-export-order';
import { PinnedIndexes1795579200001 } from './1795579200001-pinned-indexes';
import { SearchIndexCap1795582800000 } from './1795582800000-search-index-cap';
import { IdempotencyOwnerIndex1795582800001 } from './1795582800001-idempotency-owner-index';
import { ConversationTrees1795586400000 } from './1795586400000-conversation-trees';
import { ReplyProgress1795593600000 } from './1795593600000-reply-progress';

/** Every migration, oldest first. Listed explicitly so the app, the CLI and the tests run the same set. */
export const migrations = [
  CreateSessionsAndMessages1795557600000,
  SessionTagsArchivePin1795564800000,
  OwnersApiKeysIdempotency1795568400000,
  SessionCounts1795570200000,
  SearchIndex1795575600000,
  ExportOrder1795579200000,
  PinnedIndexes1795579200001,
  SearchIndexCap1795582800000,
  IdempotencyOwnerIndex1795582800001,
  ConversationTrees1795586400000,
  ReplyProgress1795593600000,
];
