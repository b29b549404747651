// The image's HEALTHCHECK (Dockerfile), for the node and for every worker: one
// image runs either, and the probe cannot see which. A node answers /healthz on
// NERVE_PORT (default 8080), a worker on NERVE_METRICS_PORT (the image sets
// 9090). One process runs per container, so the first of the two ports that
// accepts a connection is the process to judge: healthy when it answers 200.
// /healthz, not /readyz: a node whose Redis is down is alive, and restarting
// every node because Redis is down would make the outage worse (docs/operations.md).
import { request } from 'node:http';

const ports = [process.env.NERVE_PORT || '8080', process.env.NERVE_METRICS_PORT || '9090'];

function probe(port) {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port: Number(port), path: '/healthz', timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200 ? 'healthy' : `unhealthy: /healthz on ${port} answered ${res.statusCode}`);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (error) => resolve(error.code === 'ECONNREFUSED' ? undefined : `unhealthy: ${port}: ${error.message}`));
    req.end();
  });
}

for (const port of ports) {
  const verdict = await probe(port);
  if (verdict === undefined) continue;
  if (verdict !== 'healthy') console.error(verdict);
  process.exit(verdict === 'healthy' ? 0 : 1);
}
console.error(`unhealthy: nothing listens on ${ports.join(' or ')}`);
process.exit(1);
