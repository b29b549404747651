-- Events a consumer has applied, written in the same transaction as the
-- effect, so a redelivered event (at least once) is applied exactly once.
CREATE TABLE processed_events (
  consumer     text        NOT NULL,
  event_id     text        NOT NULL,
  processed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer, event_id)
);

-- billing: participant-minutes per room session, from room.ended.
CREATE TABLE usage (
  tenant              text          NOT NULL,
  room                text          NOT NULL,
  session             text          NOT NULL,
  event_id            text          NOT NULL,
  started_at          bigint        NOT NULL,  -- ms since epoch
  ended_at            bigint        NOT NULL,  -- ms since epoch (event ts)
  duration_ms         bigint        NOT NULL,
  participants        integer       NOT NULL,
  participant_ms      bigint        NOT NULL,
  participant_minutes numeric(16,3) NOT NULL,
  recorded_at         timestamptz   NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, room, session)
);
CREATE INDEX usage_tenant_ended ON usage (tenant, ended_at);
