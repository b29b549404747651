/**
 * Builds the admin page's cluster view: the registry's entries, with this
 * node's own entry replaced by a fresh snapshot (so the node answering is
 * never a heartbeat behind), or this node alone when the registry cannot be
 * read (the answer says why).
 */
import { errorText } from '../errors.js';
import type { NodeEntry, NodeRecord, NodeRegistry } from '../registry/registry.js';
import type { ClusterView } from './admin.js';

export async function handleAdminCluster(
  selfId: string,
  registry: NodeRegistry,
  snapshot: () => Promise<Omit<NodeEntry, 'state' | 'ttlMs'>>,
  draining: () => boolean,
): Promise<ClusterView> {
  const fresh = await snapshot();
  let nodes: NodeRecord[] = [];
  let registryError: string | undefined;
  try {
    nodes = await registry.list();
  } catch (error) {
    registryError = errorText(error);
  }
  const known = nodes.find((node) => node.id === selfId);
  const self: NodeRecord = { ...fresh, state: draining() ? 'draining' : 'running', ttlMs: known?.ttlMs ?? 0, heartbeatAgeMs: known?.heartbeatAgeMs ?? 0 };
  nodes = [...nodes.filter((node) => node.id !== selfId), self].sort((a, b) => a.id.localeCompare(b.id));
  return { self: selfId, registry: registry.driver, now: Date.now(), nodes, ...(registryError === undefined ? {} : { registryError }) };
}
