import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { MemoryEventLog } from '../../src/events/memory.js';
import { createEvent, isValidEvent, parseEvent, roomEnded } from '../../src/events/events.js';
import { parseWorkerCommand } from '../../src/workers/cli.js';
import { Webhook } from 'standardwebhooks';
import { postEvent, webhookSigner } from '../../src/workers/http.js';
import { checkWorkerOptions, runWorker } from '../../src/workers/runner.js';
import { waitFor } from '../helpers/wait.js';

describe('worker command line', () => {
  it('reads flags, falling back to NERVE_* variables; a flag wins', () => {
    const { name, options, logLevel } = parseWorkerCommand(
      ['webhooks', '--webhook-url', 'http://a/1', '--webhook-url', 'http://a/2', '--prefetch', '4', '--env', 'prod'],
      { NERVE_AMQP_URL: 'amqp://h', NERVE_ENV: 'staging', NERVE_WEBHOOK_URLS: 'http://ignored', NERVE_WEBHOOK_SECRET: 's'.repeat(16), NERVE_LOG_LEVEL: 'warn' },
    );
    assert.equal(name, 'webhooks');
    assert.equal(logLevel, 'warn');
    assert.deepEqual(options, { amqpUrl: 'amqp://h', env: 'prod', prefetch: 4, webhookUrls: ['http://a/1', 'http://a/2'], webhookSecret: 's'.repeat(16) });
  });

  it('reads --log-format over NERVE_LOG_FORMAT; without either, json when stdout is not a terminal', () => {
    assert.equal(parseWorkerCommand(['billing', '--log-format', 'pretty'], { NERVE_LOG_FORMAT: 'json' }).logFormat, 'pretty');
    assert.equal(parseWorkerCommand(['billing'], { NERVE_LOG_FORMAT: 'pretty' }).logFormat, 'pretty');
    const wasTty = process.stdout.isTTY;
    try {
      process.stdout.isTTY = false;
      assert.equal(parseWorkerCommand(['billing'], {}).logFormat, 'json');
      process.stdout.isTTY = true;
      assert.equal(parseWorkerCommand(['billing'], {}).logFormat, 'pretty');
    } finally {
      process.stdout.isTTY = wasTty;
    }
    assert.throws(() => parseWorkerCommand(['billing', '--log-format', 'colour'], {}), { name: 'ConfigError', setting: 'log-format' });
  });

  it('splits NERVE_WEBHOOK_URLS on commas', () => {
    const { options } = parseWorkerCommand(['webhooks'], { NERVE_WEBHOOK_URLS: 'http://a, http://b' });
    assert.deepEqual(options.webhookUrls, ['http://a', 'http://b']);
  });

  it('names the setting in a ConfigError', () => {
    assert.throws(() => parseWorkerCommand(['billing', '--prefetch', 'many'], {}), { name: 'ConfigError', setting: 'prefetch' });
    assert.throws(() => parseWorkerCommand(['billing', '--log-level', 'loud'], {}), { name: 'ConfigError', setting: 'log-level' });
    assert.throws(() => parseWorkerCommand([], {}), { name: 'ConfigError', setting: 'worker' });
    assert.throws(() => checkWorkerOptions('billing', { amqpUrl: 'amqp://h' }), { setting: 'postgresUrl' });
    assert.throws(() => checkWorkerOptions('cleanup', { amqpUrl: 'amqp://h' }), { setting: 'cleanupHookUrl' });
    assert.throws(() => checkWorkerOptions('cleanup', { amqpUrl: 'amqp://h', cleanupHookUrl: 'ftp://x' }), { setting: 'cleanupHookUrl' });
    assert.throws(() => checkWorkerOptions('chat-store', { amqpUrl: 'amqp://h', postgresUrl: 'postgres://x', schema: 'Bad-Name' }), { setting: 'schema' });
    assert.throws(() => checkWorkerOptions('nope', { amqpUrl: 'amqp://h' }), { setting: 'worker' });
  });

  it('reads --chat-intake / NERVE_CHAT_INTAKE, only for chat-store and only with an AMQP URL', () => {
    assert.deepEqual(parseWorkerCommand(['chat-store', '--chat-intake', '--idempotency-window-ms', '60000'], {}).options, {
      chatIntake: true,
      idempotencyWindowMs: 60_000,
    });
    assert.equal(parseWorkerCommand(['chat-store'], { NERVE_CHAT_INTAKE: 'true' }).options.chatIntake, true);
    assert.equal(parseWorkerCommand(['chat-store'], {}).options.chatIntake, undefined);
    const pg = { postgresUrl: 'postgres://x' };
    assert.equal(checkWorkerOptions('chat-store', { amqpUrl: 'amqp://h', ...pg, chatIntake: true }).name, 'chat-store');
    assert.throws(() => checkWorkerOptions('billing', { amqpUrl: 'amqp://h', ...pg, chatIntake: true }), { setting: 'chatIntake' });
    assert.throws(() => checkWorkerOptions('chat-store', { eventLog: new MemoryEventLog(), ...pg, chatIntake: true }), { setting: 'amqpUrl' });
  });

  it('reads --metrics-port / NERVE_METRICS_PORT (0 = off) and refuses bad ports', () => {
    assert.equal(parseWorkerCommand(['cleanup', '--metrics-port', '9464'], { NERVE_METRICS_PORT: '1' }).options.metricsPort, 9464);
    assert.equal(parseWorkerCommand(['cleanup'], { NERVE_METRICS_PORT: '9465' }).options.metricsPort, 9465);
    assert.equal(parseWorkerCommand(['cleanup'], {}).options.metricsPort, undefined);
    assert.throws(() => parseWorkerCommand(['cleanup', '--metrics-port=-1'], {}), { name: 'ConfigError', setting: 'metrics-port' });
    const ok = { amqpUrl: 'amqp://h', cleanupHookUrl: 'http://h/x' };
    assert.equal(checkWorkerOptions('cleanup', { ...ok, metricsPort: 0 }).name, 'cleanup');
    assert.throws(() => checkWorkerOptions('cleanup', { ...ok, metricsPort: 65_536 }), { setting: 'metricsPort' });
  });
});

describe('webhook signatures', () => {
  /** The headers and body of one signed POST, captured by a fake fetch. */
  async function signedPost(secret: string): Promise<{ body: string; headers: Record<string, string> }> {
    let sent: { body: string; headers: Record<string, string> } | undefined;
    const fetch = (async (_url: string, init: RequestInit) => {
      sent = { body: init.body as string, headers: init.headers as Record<string, string> };
      return new Response(null, { status: 204 });
    }) as typeof globalThis.fetch;
    const event = roomEnded({ tenant: 'acme', room: 'lobby', session: 's1', node: 'n1' }, { startedAt: 1, durationMs: 2, participants: [] });
    assert.equal((await postEvent('http://hook.test/', event, { signer: webhookSigner(secret), timeoutMs: 1000, attempt: 1, fetch })).outcome, 'ack');
    assert.ok(sent);
    assert.equal(sent.headers['webhook-id'], event.id);
    assert.match(sent.headers['webhook-timestamp'] ?? '', /^\d+$/);
    assert.match(sent.headers['webhook-signature'] ?? '', /^v1,[A-Za-z0-9+/]{43}=$/);
    return sent;
  }

  it('signs to Standard Webhooks: the reference library verifies, and refuses tampering and other secrets', async () => {
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    const { body, headers } = await signedPost(secret);
    assert.deepEqual(new Webhook(secret).verify(body, headers), JSON.parse(body));
    assert.throws(() => new Webhook(secret).verify(body.replace('lobby', 'other'), headers));
    assert.throws(() => new Webhook('whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA').verify(body, headers));
    assert.throws(() => new Webhook(secret).verify(body, { ...headers, 'webhook-signature': 'garbage' }));
  });

  it('uses any other secret as its UTF-8 bytes: the receiver passes whsec_ and its base64', async () => {
    for (const secret of ['a-plain-secret-of-20', 'whsec_not_base64_text']) {
      const { body, headers } = await signedPost(secret);
      assert.ok(new Webhook(`whsec_${Buffer.from(secret).toString('base64')}`).verify(body, headers));
    }
  });
});

describe('events', () => {
  it('builds valid versioned events and rejects bad ones with a field path', () => {
    const event = roomEnded({ tenant: 'acme', room: 'r1', session: 's1', node: 'n1' }, { startedAt: 0, durationMs: 5, participants: [{ user: 'u', ms: 5 }] });
    assert.equal(event.v, 1);
    assert.equal(event.type, 'room.ended');
    assert.ok(isValidEvent(JSON.parse(JSON.stringify(event))));
    assert.throws(() => parseEvent({ ...event, data: { startedAt: 0, durationMs: -1, participants: [] } }), {
      name: 'InvalidEventError',
      code: 'invalid_event',
    });
    assert.throws(() => parseEvent({ ...event, room: undefined }), /needs room and session/);
    assert.throws(() => createEvent('participant.left', { tenant: 'acme', room: 'r', session: 's', node: 'n' }, { user: 'u', reason: 'vanished' as 'left' }), {
      name: 'InvalidEventError',
    });
    assert.ok(!isValidEvent({ ...event, v: 2 }));
  });
});

describe('cleanup worker', () => {
  it('POSTs each room.ended to the hook, retrying until it answers 2xx', async () => {
    const calls: string[] = [];
    const server = createServer((req, res) => {
      calls.push(String(req.headers['nerve-attempt']));
      req.resume();
      res.statusCode = calls.length < 2 ? 503 : 200;
      res.end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    assert.ok(address && typeof address !== 'string');
    const log = new MemoryEventLog();
    const worker = await runWorker('cleanup', {
      eventLog: log,
      cleanupHookUrl: `http://127.0.0.1:${address.port}/release`,
      retryDelayMs: 5,
      logger: pino({ level: 'silent' }),
    });
    try {
      await log.publish(roomEnded({ tenant: 'acme', room: 'r1', session: 's1', node: 'n1' }, { startedAt: 0, durationMs: 5, participants: [] }));
      await waitFor(() => calls.length === 2, { what: 'second call' });
      assert.deepEqual(calls, ['1', '2']);
      await worker.close();
      assert.deepEqual(log.deadLetters('cleanup'), []);
    } finally {
      await worker.close();
      await log.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
