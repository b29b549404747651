/**
 * Decoding and encoding of protocol frames, in one place. The decoder never
 * throws: every bad input becomes a typed `NerveError` with the request id
 * when one could be read, so the gateway can answer it.
 */
import { ErrorCode } from './codes.js';
import { NerveError } from './errors.js';
import { fastFrame } from './fast-frames.js';
import type { ClientFrame, RequestId, ServerFrame } from './frames.js';
import { MAX_FRAME_DEPTH, nestsDeeperThan } from './nesting.js';
import { clientFrameSchemas, requestIdSchema } from './schema.js';

export type DecodeResult = { ok: true; frame: ClientFrame } | { ok: false; error: NerveError; rid?: RequestId };

const MAX_PATH_LENGTH = 80;

export function decodeClientFrame(text: string): DecodeResult {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { ok: false, error: new NerveError(ErrorCode.BadJson, 'frame is not valid JSON') };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return { ok: false, error: new NerveError(ErrorCode.InvalidFrame, 'frame must be a JSON object') };
  }
  const record = parsed as Record<string, unknown>;
  // Before anything reads it: deeper data would overflow the encoder when delivered (nesting.ts).
  if (nestsDeeperThan(text)) {
    const ridResult = requestIdSchema.safeParse(record.rid);
    return withRid(
      new NerveError(ErrorCode.InvalidFrame, `frame nests objects and arrays deeper than ${MAX_FRAME_DEPTH} levels`),
      ridResult.success ? ridResult.data : undefined,
    );
  }
  const op = record.op;
  // The frames of the hot path, when valid, without zod (fast-frames.ts).
  const fast = typeof op === 'string' ? fastFrame(op, record) : undefined;
  if (fast) return { ok: true, frame: fast };
  const ridResult = requestIdSchema.safeParse(record.rid);
  const rid = ridResult.success ? ridResult.data : undefined;
  if (typeof op !== 'string' || !Object.hasOwn(clientFrameSchemas, op)) {
    return withRid(new NerveError(ErrorCode.UnknownOp, 'unknown op'), rid);
  }
  const schema = clientFrameSchemas[op as keyof typeof clientFrameSchemas];
  const result = schema.safeParse(parsed);
  if (!result.success) {
    const issue = result.error.issues[0];
    const path = issue ? issue.path.map(String).join('.').slice(0, MAX_PATH_LENGTH) : '';
    // Only the field path goes back to the client: the message is ours, never an echo of input.
    return withRid(new NerveError(ErrorCode.InvalidFrame, path ? `invalid field: ${path}` : 'invalid frame'), rid);
  }
  return { ok: true, frame: result.data as ClientFrame };
}

function withRid(error: NerveError, rid: RequestId | undefined): DecodeResult {
  return rid === undefined ? { ok: false, error } : { ok: false, error, rid };
}

/** Encode a server frame. Callers that fan out encode once and reuse the string. */
export function encodeFrame(frame: ServerFrame | ClientFrame): string {
  return JSON.stringify(frame);
}
