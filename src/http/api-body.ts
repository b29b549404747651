/**
 * Request bodies of the server API: read with a size cap, parsed as JSON,
 * validated with zod. Every failure is an `ApiError` with an HTTP status and
 * a stable code (docs/api.md); messages never echo the input.
 */
import type { IncomingMessage } from 'node:http';
import { z } from 'zod';
import { ROOM_RIGHTS } from '../auth/grants.js';
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { SIGNAL_KINDS } from '../../packages/protocol/src/frames.js';
import { USER_ID_PATTERN } from '../../packages/protocol/src/ids.js';
import { MAX_FRAME_DEPTH, nestsDeeperThan } from '../../packages/protocol/src/nesting.js';

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

/**
 * The HTTP answer for a refusal the gateway gave as a protocol error (docs/api.md's
 * error table), shared by the server API and the admin actions so one code has one status.
 */
export function apiErrorOf(error: { code: string; message: string; retryAfterMs: number | undefined; quota?: string | undefined }): ApiError {
  const retry = error.retryAfterMs === undefined ? {} : { retryAfterMs: error.retryAfterMs };
  switch (error.code) {
    case ErrorCode.QuotaExceeded:
      return new ApiError(429, error.code, error.message, { quota: error.quota, ...retry });
    case ErrorCode.RateLimited:
      return new ApiError(429, error.code, error.message, retry);
    case ErrorCode.BusUnavailable:
    case ErrorCode.Unavailable:
      return new ApiError(503, error.code, error.message);
    // Sent to the store or the bus, never answered: it may have taken effect (re-send chat with the same cmid).
    case ErrorCode.OutcomeUnknown:
      return new ApiError(504, error.code, error.message);
    default:
      return new ApiError(400, error.code, error.message);
  }
}

/** The Retry-After header (whole seconds) for a refusal that says when to retry. */
export function retryAfterHeaders(error: ApiError): Record<string, string> {
  const ms = error.extra.retryAfterMs;
  return typeof ms === 'number' ? { 'retry-after': String(Math.ceil(ms / 1000)) } : {};
}

/** Read a JSON body of at most `maxBytes`; 413 beyond it (the rest is not read), 415 for another content type. */
export async function readJson(request: IncomingMessage, maxBytes: number): Promise<unknown> {
  const type = (request.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/json') throw new ApiError(415, 'unsupported_media_type', 'send Content-Type: application/json');
  const declared = Number(request.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > maxBytes) throw new ApiError(413, 'body_too_large', `bodies are at most ${maxBytes} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) throw new ApiError(413, 'body_too_large', `bodies are at most ${maxBytes} bytes`);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  let body: unknown;
  try {
    body = JSON.parse(text) as unknown;
  } catch {
    throw new ApiError(400, 'bad_json', 'the body is not valid JSON');
  }
  // The same bound as a WebSocket frame: the data is encoded again to be delivered, and deeper nesting overflows the encoder.
  if (nestsDeeperThan(text)) throw new ApiError(400, 'invalid_body', `the body nests objects and arrays deeper than ${MAX_FRAME_DEPTH} levels`);
  return body;
}

/** Validate with `schema`; 400 `invalid_body` naming the first bad field's path (never its value). */
export function validate<T>(schema: z.ZodType<T>, value: unknown): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const path = issue ? issue.path.map(String).join('.').slice(0, 80) : '';
  throw new ApiError(400, 'invalid_body', path ? `invalid field: ${path}` : 'invalid body');
}

const userId = z.string().regex(USER_ID_PATTERN);
const tenant = z
  .string()
  .regex(/^[A-Za-z0-9._~-]{1,64}$/)
  .optional();
const data = z.unknown().refine((value) => value !== undefined, 'data is required');

/** A publish's fields, for the server API and the admin console alike; `from`, the sender stamped on the message, defaults to `defaultFrom`. */
export const publishFields = (defaultFrom: string) => ({
  class: z.enum(['chat', 'ephemeral']).default('chat'),
  data,
  from: userId.default(defaultFrom),
  cmid: z.string().min(1).max(64).optional(),
  key: z.string().min(1).max(64).optional(),
});

export const publishBody = z.object({ ...publishFields('server'), tenant });

export const signalBody = z.object({
  kind: z.enum(SIGNAL_KINDS),
  data,
  from: userId.default('server'),
  tenant,
});

export const endRoomBody = z.object({
  reason: z.string().max(200).default('ended'),
  tenant,
});

export const joinTokenBody = z.object({
  user: userId,
  room: z.string().regex(/^[A-Za-z0-9._~-]{1,128}$/),
  rights: z.array(z.enum(ROOM_RIGHTS)).max(ROOM_RIGHTS.length).optional(),
  ttlSeconds: z
    .number()
    .int()
    .min(10)
    .max(86_400 * 30)
    .optional(),
  tenant,
});

export const turnBody = z.object({
  user: userId,
  ttlSeconds: z
    .number()
    .int()
    .min(60)
    .max(86_400 * 30)
    .optional(),
  tenant: z.string().optional(),
});
