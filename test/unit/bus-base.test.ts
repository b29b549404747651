import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RefCountedBus } from '../../src/bus/base.js';
import type { BusEnvelope } from '../../src/bus/bus.js';
import { Canary } from '../../src/bus/canary.js';
import type { LaneHealth } from '../../src/lanes.js';
import { waitFor } from '../helpers/wait.js';

/** A driver whose subscribe fails while `down` is set; records what it did. */
class FlakyBus extends RefCountedBus {
  readonly driver = 'flaky';
  down = false;
  readonly live = new Set<string>();
  protected async subscribeChannel(channel: string): Promise<void> {
    if (this.down) throw new Error('down');
    this.live.add(channel);
  }
  protected async unsubscribeChannel(channel: string): Promise<void> {
    this.live.delete(channel);
  }
  async publish(_channel: string, _envelope: BusEnvelope): Promise<number> {
    return 0;
  }
  health(): LaneHealth {
    return { lane: 'bus', driver: this.driver, ok: !this.down };
  }
  protected async open(): Promise<void> {}
  protected async shutdown(): Promise<void> {}
}

/** A driver whose first subscribe waits until `failFirst` makes it fail; later ones succeed at once. */
class GatedBus extends RefCountedBus {
  readonly driver = 'gated';
  readonly live = new Set<string>();
  gate: ((error: Error) => void) | undefined;
  private first = true;
  failFirst(error: Error): void {
    this.gate?.(error);
  }
  protected async subscribeChannel(channel: string): Promise<void> {
    if (this.first) {
      this.first = false;
      await new Promise<void>((_, reject) => {
        this.gate = reject;
      });
    }
    this.live.add(channel);
  }
  protected async unsubscribeChannel(channel: string): Promise<void> {
    this.live.delete(channel);
  }
  async publish(): Promise<number> {
    return 0;
  }
  health(): LaneHealth {
    return { lane: 'bus', driver: this.driver, ok: true };
  }
  protected async open(): Promise<void> {}
  protected async shutdown(): Promise<void> {}
}

describe('RefCountedBus', () => {
  it('forgets idle channels (no state per channel ever used)', async () => {
    const bus = new FlakyBus();
    await bus.start(() => {});
    for (let i = 0; i < 200; i++) {
      await bus.acquire(`c${i}`);
      await bus.release(`c${i}`);
    }
    const states = (bus as unknown as { states: Map<string, unknown> }).states;
    assert.equal(states.size, 0);
    assert.deepEqual(bus.channels(), []);
  });

  it('a failed acquire never takes the reference of a later acquire', async () => {
    const bus = new GatedBus();
    await bus.start(() => {});
    // A: subscribe in flight, and it will fail.
    const a = bus.acquire('r');
    // R: release A's reference while A is in flight; B: acquire again.
    const r = bus.release('r');
    const b = bus.acquire('r');
    await waitFor(() => bus.gate !== undefined, { what: 'A subscribing' });
    bus.failFirst(new Error('down'));
    await assert.rejects(a, /down/);
    await r;
    await b;
    assert.deepEqual(bus.channels(), ['r']);
    assert.ok(bus.live.has('r'), 'B is subscribed');
  });

  it('a failed acquire takes no reference', async () => {
    const bus = new FlakyBus();
    await bus.start(() => {});
    bus.down = true;
    await assert.rejects(bus.acquire('a'), /down/);
    await assert.rejects(bus.acquire('a'), /down/);
    assert.deepEqual(bus.channels(), []);
    bus.down = false;
    await bus.acquire('a');
    assert.deepEqual(bus.channels(), ['a']);
    await bus.release('a');
    assert.deepEqual(bus.channels(), []);
    assert.deepEqual([...bus.live], [], 'one release undid the one successful acquire');
  });

  it('a failed acquire does not take down a reference held before', async () => {
    const bus = new FlakyBus();
    await bus.start(() => {});
    await bus.acquire('a');
    bus.down = true;
    await bus.acquire('a'); // already subscribed: no driver call, succeeds
    bus.down = false;
    await bus.release('a');
    assert.deepEqual(bus.channels(), ['a']);
    await bus.release('a');
    assert.deepEqual([...bus.live], []);
  });
});

describe('Canary', () => {
  function harness(deliver: boolean, sendFails = false) {
    const deaf: string[] = [];
    const healthy: string[] = [];
    const canary: Canary = new Canary({
      intervalMs: 0,
      timeoutMs: 50,
      channels: () => ['c1', 'c2'],
      canProbe: (channel) => channel !== 'c2',
      send: async (_channel, id) => {
        if (sendFails) throw new Error('publisher down');
        if (deliver) queueMicrotask(() => canary.received(id));
        return 1;
      },
      onDeaf: (channel) => deaf.push(channel),
      onHealthy: (channel) => healthy.push(channel),
    });
    return { canary, deaf, healthy };
  }

  it('a probe that comes back is healthy; channels that cannot be probed are skipped', async () => {
    const { canary, deaf, healthy } = harness(true);
    assert.deepEqual(await canary.round(), []);
    assert.deepEqual(healthy, ['c1']);
    assert.deepEqual(deaf, []);
    assert.equal(canary.failures, 0);
  });

  it('a probe that never comes back declares the channel deaf', async () => {
    const { canary, deaf } = harness(false);
    assert.deepEqual(await canary.round(), ['c1']);
    assert.deepEqual(deaf, ['c1']);
    assert.equal(canary.failures, 1);
  });

  it('a probe that could not be published is not a canary failure', async () => {
    const { canary, deaf } = harness(false, true);
    assert.deepEqual(await canary.round(), []);
    assert.deepEqual(deaf, []);
  });

  it('runs one round per interval on its timer, and none once stopped', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const settle = () => new Promise<void>((resolve) => setImmediate(resolve));
    let sent = 0;
    const canary: Canary = new Canary({
      intervalMs: 100,
      timeoutMs: 50,
      channels: () => ['c'],
      canProbe: () => true,
      send: async (_channel, id) => {
        sent += 1;
        queueMicrotask(() => canary.received(id));
      },
      onDeaf: () => {},
      onHealthy: () => {},
    });
    canary.start();
    await settle();
    assert.equal(sent, 0, 'the first round waits one interval');
    for (let round = 1; round <= 3; round += 1) {
      t.mock.timers.tick(100);
      await settle();
      assert.equal(sent, round, `round ${round}`);
    }
    canary.stop();
    t.mock.timers.tick(1000);
    await settle();
    assert.equal(sent, 3, 'no round after stop');
    assert.equal(canary.received('unknown'), false);
  });
});
