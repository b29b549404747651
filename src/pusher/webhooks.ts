/**
 * Pusher-format webhooks (docs/pusher.md, "Webhooks"), in two halves that
 * meet on the cold lane: the node turns each PusherFact an app has a
 * webhook for into a `pusher.webhook` event (`webhookEvent`); the webhooks
 * worker runs one consumer per app and URL (`pusherWebhookConsumers`) that
 * batches the events of BATCH_MS into one signed POST and answers each with
 * its outcome: 2xx ack, 410 dead-letter, anything else retry.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { errorText } from '../errors.js';
import { EVENT_VERSION, type HandlerOutcome, type LifecycleEvent } from '../events/event-log.js';
import { eventData, parseEvent, type EventDataMap } from '../events/events.js';
import type { ConsumerSpec, EventHandler } from '../events/event-log.js';
import type { PusherApp, PusherWebhookTarget } from '../config/pusher-apps.js';
import type { PusherFact } from './context.js';
import { hmacHex } from './signature.js';

type WebhookData = EventDataMap['pusher.webhook'];

/** The `pusher.webhook` event of a fact, or undefined when no webhook of its app wants it. */
export function webhookEvent(fact: PusherFact, nodeId: string): LifecycleEvent<'pusher.webhook'> | undefined {
  const app = fact.app;
  if (!app.webhooks.some((target) => target.events.includes(fact.type))) return undefined;
  const data = webhookData(fact);
  const event = {
    v: EVENT_VERSION,
    id: randomUUID(),
    type: 'pusher.webhook' as const,
    ts: Date.now(),
    tenant: app.tenant,
    node: nodeId,
    data: data as Record<string, unknown>,
  };
  parseEvent(event);
  return event;
}

function webhookData(fact: PusherFact): WebhookData {
  const app = fact.app.id;
  switch (fact.type) {
    case 'client_event':
      return {
        app,
        name: 'client_event',
        channel: fact.channel,
        event: fact.event,
        // Pusher sends client event data as a string, JSON-encoded when the client sent an object.
        data: typeof fact.data === 'string' ? fact.data : JSON.stringify(fact.data ?? null),
        socket_id: fact.socketId,
        ...(fact.userId === undefined ? {} : { user_id: fact.userId }),
      };
    case 'member_added':
    case 'member_removed':
      return { app, name: fact.type, channel: fact.channel, user_id: fact.userId };
    case 'channel_occupied':
    case 'channel_vacated':
      return { app, name: fact.type, channel: fact.channel };
  }
}

/** Queue of one app's webhook URL: `pusher-webhooks.<hash of app id and URL>`. */
export function pusherWebhookQueue(app: PusherApp, url: string): string {
  return `pusher-webhooks.${createHash('sha256').update(`${app.id}\n${url}`).digest('hex').slice(0, 12)}`;
}

/** How long the first event of a batch waits for others, ms. */
const BATCH_MS = 100;
/** Most events in one POST. */
const MAX_BATCH = 100;

export interface WebhookConsumer {
  spec: ConsumerSpec;
  handler: EventHandler;
}

/** One consumer per app and webhook URL; apps without webhooks get none. */
export function pusherWebhookConsumers(apps: readonly PusherApp[], options: { timeoutMs: number; logger: Logger; fetch?: typeof fetch }): WebhookConsumer[] {
  return apps.flatMap((app) =>
    app.webhooks.map((target) => {
      const batcher = new WebhookBatcher(app, target, options);
      return { spec: { queue: pusherWebhookQueue(app, target.url), bindings: ['pusher.webhook'] }, handler: (event: LifecycleEvent) => batcher.handle(event) };
    }),
  );
}

interface Pending {
  data: WebhookData;
  settle: (outcome: HandlerOutcome) => void;
}

class WebhookBatcher {
  private pending: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly app: PusherApp,
    private readonly target: PusherWebhookTarget,
    private readonly options: { timeoutMs: number; logger: Logger; fetch?: typeof fetch },
  ) {}

  handle(event: LifecycleEvent): Promise<HandlerOutcome> {
    const data = eventData(event, 'pusher.webhook');
    // Every app's events reach every app's queue (one binding): the others are not this URL's.
    if (data.app !== this.app.id || !this.target.events.includes(data.name)) return Promise.resolve('ack');
    return new Promise((settle) => {
      this.pending.push({ data, settle });
      if (this.pending.length >= MAX_BATCH) this.flush();
      else this.timer ??= setTimeout(() => this.flush(), BATCH_MS);
    });
  }

  private flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.pending;
    this.pending = [];
    if (batch.length === 0) return;
    void this.post(batch.map((item) => item.data)).then((outcome) => {
      for (const item of batch) item.settle(outcome);
    });
  }

  private async post(events: WebhookData[]): Promise<HandlerOutcome> {
    const body = JSON.stringify({ time_ms: Date.now(), events: events.map(({ app: _app, ...event }) => event) });
    const headers = { 'content-type': 'application/json', 'x-pusher-key': this.app.key, 'x-pusher-signature': hmacHex(this.app.secret, body) };
    try {
      const response = await (this.options.fetch ?? fetch)(this.target.url, {
        method: 'POST',
        headers,
        body,
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
      await response.body?.cancel().catch(() => {});
      if (response.ok) return 'ack';
      this.options.logger.warn({ app: this.app.id, url: this.target.url, status: response.status, events: events.length }, 'pusher webhook refused');
      return response.status === 410 ? 'dead_letter' : 'retry';
    } catch (error) {
      this.options.logger.warn({ app: this.app.id, url: this.target.url, err: errorText(error), events: events.length }, 'pusher webhook failed');
      return 'retry';
    }
  }
}
