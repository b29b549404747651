/**
 * This node's registry entry, built from what it already counts (its
 * Prometheus metrics) and its lanes' health. Lane transitions (up → down)
 * are also recorded in the recent-errors ring here, so the admin page shows
 * when a lane failed even after it came back.
 */
import type { LaneHealth } from '../lanes.js';
import type { NodeMetrics } from '../metrics.js';
import type { NodeCounters, NodeEntry } from './registry.js';

export interface SnapshotSource {
  nodeId: string;
  address: () => string;
  version: string;
  startedAt: number;
  metrics: NodeMetrics;
  connections: () => number;
  rooms: () => number;
  lanes: () => LaneHealth[];
  eventsPublished: () => number;
}

async function byLabel(
  metric: { get(): Promise<{ values: Array<{ labels: Record<string, unknown>; value: number }> }> },
  label: string,
): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const { labels, value } of (await metric.get()).values) {
    const raw = labels[label];
    const key = typeof raw === 'string' || typeof raw === 'number' ? String(raw) : '';
    out[key] = (out[key] ?? 0) + value;
  }
  return out;
}

const sum = (values: Record<string, number>): number => Object.values(values).reduce((a, b) => a + b, 0);

export class NodeSnapshot {
  /** Lanes last seen down, to record each failure once. */
  private readonly down = new Set<string>();

  constructor(private readonly source: SnapshotSource) {}

  async build(): Promise<Omit<NodeEntry, 'state' | 'ttlMs'>> {
    const { source } = this;
    const lanes = source.lanes();
    for (const lane of lanes) {
      const key = `${lane.lane}:${lane.driver}`;
      if (!lane.ok && !this.down.has(key)) {
        this.down.add(key);
        source.metrics.recentErrors.add(`lane_${lane.lane}`, lane.detail ?? 'down');
      } else if (lane.ok) this.down.delete(key);
    }
    const counters: NodeCounters = {
      messagesIn: await byLabel(source.metrics.messages, 'class'),
      deliveries: await byLabel(source.metrics.deliveries, 'class'),
      eventsPublished: source.eventsPublished(),
      drops: sum(await byLabel(source.metrics.drops, 'reason')),
      errors: sum(await byLabel(source.metrics.errors, 'code')),
    };
    return {
      id: source.nodeId,
      address: source.address(),
      version: source.version,
      startedAt: source.startedAt,
      connections: source.connections(),
      rooms: source.rooms(),
      counters,
      lanes,
      errors: source.metrics.recentErrors.list(),
    };
  }
}
