import { MemoryBus, MemoryBusHub } from '../../src/bus/memory.js';
import { busConformance } from '../conformance/bus.js';

busConformance('memory', (count) => {
  const hub = new MemoryBusHub();
  return Array.from({ length: count }, () => new MemoryBus({ hub }));
});
