/** Deletes every key of one test namespace on the shared Redis (SCAN + UNLINK; never FLUSH). */
import { Redis } from 'ioredis';

export async function deleteNamespace(url: string, env: string): Promise<number> {
  const admin = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  admin.on('error', () => {});
  let deleted = 0;
  try {
    await admin.connect();
    let cursor = '0';
    do {
      const [next, keys] = await admin.scan(cursor, 'MATCH', `${env}:nerve:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) deleted += await admin.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    admin.disconnect();
  }
  return deleted;
}
