-- History on PostgreSQL (--bus rabbitmq with --postgres-url, src/history/postgres.ts):
-- one row per room log (its epoch and newest offset), the exact message as
-- delivered, and the client-message-id window.
CREATE TABLE room_logs (
  tenant      text   NOT NULL,
  room        text   NOT NULL,
  epoch       text   NOT NULL,
  last_offset bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (tenant, room)
);
-- The message exactly as delivered (JSON text: jsonb would reorder keys); NULL for rows written by chat-store.
ALTER TABLE chat_messages ADD COLUMN message_json text;
-- Replay reads a range of offsets of one room log.
CREATE INDEX chat_messages_room_offset ON chat_messages (tenant, room, epoch, room_offset);
CREATE TABLE chat_idempotency (
  tenant     text   NOT NULL,
  room       text   NOT NULL,
  sender     text   NOT NULL,
  cmid       text   NOT NULL,
  message_id text   NOT NULL,
  expires_at bigint NOT NULL,  -- ms since epoch
  PRIMARY KEY (tenant, room, sender, cmid)
);
CREATE INDEX chat_idempotency_expiry ON chat_idempotency (tenant, room, expires_at);
