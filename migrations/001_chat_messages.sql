-- chat-store: every chat message, idempotent by (tenant, message id).
-- Runs with search_path set to the worker's schema (src/postgres/migrations.ts).
CREATE TABLE chat_messages (
  tenant      text        NOT NULL,
  id          text        NOT NULL,           -- server-assigned message id
  room        text        NOT NULL,
  session     text,
  sender      text        NOT NULL,
  sent_at     bigint      NOT NULL,           -- ms since epoch, server time
  room_offset bigint      NOT NULL,
  epoch       text        NOT NULL,
  body        jsonb,
  cmid        text,
  event_id    text        NOT NULL,
  stored_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, id)
);
-- Paging a room newest first: keyset on (sent_at, room_offset, id).
CREATE INDEX chat_messages_room_page ON chat_messages (tenant, room, sent_at DESC, room_offset DESC, id DESC);
