-- usage: each node's usage per tenant and interval, from usage.reported
-- (src/usage/meter.ts). One row per (tenant, node, interval start): the
-- reports of a node's processes (a restart within the interval) are added
-- into it, each event id once; event_id is the first report's.
CREATE TABLE tenant_usage (
  tenant          text        NOT NULL,
  node            text        NOT NULL,
  interval_start  bigint      NOT NULL,  -- ms since epoch
  interval_end    bigint      NOT NULL,  -- ms since epoch
  event_id        text        NOT NULL,
  connection_ms   bigint      NOT NULL,
  messages        bigint      NOT NULL,
  deliveries      bigint      NOT NULL,
  signals         bigint      NOT NULL,
  stored_bytes    bigint      NOT NULL,
  recorded_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant, node, interval_start)
);
CREATE INDEX tenant_usage_period ON tenant_usage (tenant, interval_start);
