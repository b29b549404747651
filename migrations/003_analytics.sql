-- analytics: running aggregates per room.
CREATE TABLE room_stats (
  tenant               text    NOT NULL,
  room                 text    NOT NULL,
  sessions             integer NOT NULL DEFAULT 0,
  messages             bigint  NOT NULL DEFAULT 0,
  current_participants integer NOT NULL DEFAULT 0,
  peak_participants    integer NOT NULL DEFAULT 0,
  total_duration_ms    bigint  NOT NULL DEFAULT 0,
  last_duration_ms     bigint,
  last_ended_at        bigint,
  updated_at           timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, room)
);
