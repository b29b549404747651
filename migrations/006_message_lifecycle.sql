-- Edits, deletes and reactions (docs/protocol.md, "Editing, deleting and reacting").
-- An entry row names its target; the target row holds the fold of its entries
-- (src/postgres/chat-folds.ts): its body and message_json rewritten, and when.
ALTER TABLE chat_messages
  ADD COLUMN action        text,    -- edit | delete | react; NULL for a message
  ADD COLUMN target_id     text,
  ADD COLUMN target_offset bigint,
  ADD COLUMN edited_at     bigint,  -- ms since epoch: the ts of the edit shown
  ADD COLUMN deleted_at    bigint,  -- ms since epoch: the ts of the delete
  ADD COLUMN reactions     jsonb;   -- [{emoji, count, users}], NULL when none
-- Folding reads the entries of one target.
CREATE INDEX chat_messages_target ON chat_messages (tenant, room, epoch, target_offset) WHERE target_offset IS NOT NULL;
