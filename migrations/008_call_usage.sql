-- billing: participant-minutes per call, from call.ended (src/calls/): the
-- call's times are the server's, never a client's. One row per life of a
-- call (callSession); a second call.ended for it keeps the first bill.
CREATE TABLE call_usage (
  tenant              text          NOT NULL,
  room                text          NOT NULL,
  session             text          NOT NULL,  -- the room session the call was in
  call                text          NOT NULL,  -- the clients' call id in the room
  call_session        text          NOT NULL,
  event_id            text          NOT NULL,
  started_at          bigint        NOT NULL,  -- ms since epoch
  ended_at            bigint        NOT NULL,  -- ms since epoch
  duration_ms         bigint        NOT NULL,
  participants        integer       NOT NULL,
  participant_ms      bigint        NOT NULL,
  participant_minutes numeric(16,3) NOT NULL,
  recorded_at         timestamptz   NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, call_session)
);
CREATE INDEX call_usage_tenant_ended ON call_usage (tenant, ended_at);
