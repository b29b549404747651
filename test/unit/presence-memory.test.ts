import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryPresence } from '../../src/presence/memory.js';
import { presenceConformance } from '../conformance/presence.js';

presenceConformance('memory', () => new MemoryPresence());

describe('MemoryPresence', () => {
  it('forgets empty rooms, so memory follows the live connections', async () => {
    const presence = new MemoryPresence();
    await presence.start();
    const room = { tenant: 't', room: 'r' };
    for (let i = 0; i < 50; i += 1) await presence.add({ tenant: 't', room: `r${i}` }, { user: 'u', conn: 'c', node: 'n', ts: i });
    await presence.add(room, { user: 'u', conn: 'c', node: 'n', ts: 1 });
    assert.equal(presence.roomCount(), 51);
    for (let i = 0; i < 50; i += 1) await presence.remove({ tenant: 't', room: `r${i}` }, { user: 'u', conn: 'c' });
    await presence.remove(room, { user: 'u', conn: 'c' });
    assert.equal(presence.roomCount(), 0);
    await presence.close();
  });

  it('rejects calls before start', async () => {
    const presence = new MemoryPresence();
    await assert.rejects(presence.members({ tenant: 't', room: 'r' }), { name: 'NerveError', code: 'unavailable' });
  });
});
