-- Read positions (docs/protocol.md, "Read positions"): per user per room, the
-- chat offset read up to, in one epoch of the room log. Written by the
-- chat-store worker from read.updated (src/postgres/read-positions.ts): forward
-- only within an epoch; a later event of another epoch replaces the row.
CREATE TABLE read_positions (
  tenant       text   NOT NULL,
  room         text   NOT NULL,
  user_id      text   NOT NULL,
  epoch        text   NOT NULL,
  read_offset  bigint NOT NULL,
  updated_at   bigint NOT NULL,  -- ms since epoch: the read.updated event's ts
  PRIMARY KEY (tenant, room, user_id)
);
-- A user's rooms (unread badges, push notifications).
CREATE INDEX read_positions_user ON read_positions (tenant, user_id);
