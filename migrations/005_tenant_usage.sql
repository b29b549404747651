-- usage: each node's usage per tenant and interval, from usage.reported
-- (src/usage/meter.ts). One row per (tenant, node, interval start): a
-- node reports an interval once, across restarts too (same event id).
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
