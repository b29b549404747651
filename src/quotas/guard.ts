/**
 * What the gateway tells about each tenant's traffic, in one call per
 * event: the quota check (enforcer.ts) and the usage count
 * (src/usage/meter.ts). A method returning `undefined` admitted the request
 * without waiting; a promise settles when the shared store answered, and
 * rejects (or the call throws) with `quota_exceeded`.
 */
import type { QuotaEnforcer } from './enforcer.js';
import type { UsageMeter } from '../usage/meter.js';

export class TenantGuard {
  constructor(
    readonly enforcer: QuotaEnforcer,
    readonly meter: UsageMeter,
  ) {}

  connect(tenant: string): Promise<void> | undefined {
    const admitted = this.enforcer.connect(tenant);
    if (admitted === undefined) {
      this.meter.connected(tenant);
      return undefined;
    }
    return admitted.then(() => this.meter.connected(tenant));
  }

  disconnected(tenant: string): void {
    this.enforcer.disconnected(tenant);
    this.meter.disconnected(tenant);
  }

  /** A room publish; `storedBytes` is the size of a chat message's data (0 for ephemeral). */
  publish(tenant: string, storedBytes: number): Promise<void> | undefined {
    const admitted = this.enforcer.publish(tenant, storedBytes);
    if (admitted === undefined) {
      this.meter.message(tenant);
      return undefined;
    }
    return admitted.then(() => this.meter.message(tenant));
  }

  /** Chat was stored (not a duplicate). */
  stored(tenant: string, bytes: number): void {
    this.enforcer.stored(tenant, bytes);
    this.meter.stored(tenant, bytes);
  }

  signal(tenant: string): Promise<void> | undefined {
    const admitted = this.enforcer.signal(tenant);
    if (admitted === undefined) {
      this.meter.signal(tenant);
      return undefined;
    }
    return admitted.then(() => this.meter.signal(tenant));
  }

  joinRoom(tenant: string, room: string): Promise<void> | undefined {
    return this.enforcer.joinRoom(tenant, room);
  }

  delivered(tenant: string, count: number): void {
    this.meter.delivered(tenant, count);
  }
}

/** The size a chat message's data counts for in `storedBytes`: its JSON, in UTF-8 bytes. */
export function storedSize(data: unknown): number {
  return Buffer.byteLength(JSON.stringify(data) ?? '');
}
