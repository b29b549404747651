/** The node registry of a single process: entries in a Map with an expiry, pruned on read. */
import type { NodeEntry, NodeRecord, NodeRegistry } from './registry.js';

export class MemoryNodeRegistry implements NodeRegistry {
  readonly driver = 'memory';
  private readonly entries = new Map<string, { entry: NodeEntry; writtenAt: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  async announce(entry: NodeEntry): Promise<void> {
    this.entries.set(entry.id, { entry: structuredClone(entry), writtenAt: this.now() });
  }

  async remove(id: string): Promise<void> {
    this.entries.delete(id);
  }

  async list(): Promise<NodeRecord[]> {
    const now = this.now();
    const records: NodeRecord[] = [];
    for (const [id, { entry, writtenAt }] of this.entries) {
      if (writtenAt + entry.ttlMs <= now) {
        this.entries.delete(id);
        continue;
      }
      records.push({ ...structuredClone(entry), heartbeatAgeMs: now - writtenAt });
    }
    return records.sort((a, b) => a.id.localeCompare(b.id));
  }

  async close(): Promise<void> {}
}
