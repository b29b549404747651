/** Deleting a test's keys on the shared Redis (SCAN + UNLINK; never FLUSH). */
import { Redis } from 'ioredis';

/** Deletes every key of one nerve node's `--env` namespace. */
export function deleteNamespace(url: string, env: string): Promise<number> {
  return deleteKeys(url, `${env}:nerve:*`);
}

/** Deletes every key matching `pattern` (a SCAN MATCH glob, e.g. `<test namespace>:*`); resolves with how many. */
export async function deleteKeys(url: string, pattern: string): Promise<number> {
  // No reconnecting: a server that is gone (an outage test's own) fails at once instead of retrying.
  const admin = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null, connectTimeout: 2000 });
  admin.on('error', () => {});
  let deleted = 0;
  try {
    await admin.connect();
    let cursor = '0';
    do {
      const [next, keys] = await admin.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) deleted += await admin.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    admin.disconnect();
  }
  return deleted;
}
