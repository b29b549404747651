/**
 * Identifier syntax shared by server and SDK. Ids are an allowlist of
 * characters so that no client-chosen id can act as a Redis pattern, a
 * channel separator (`:`), a path, or a log-line breaker.
 */

/** Room ids: letters, digits and `. _ ~ -`, 1 to 128 characters. */
export const ROOM_ID_PATTERN = /^[A-Za-z0-9._~-]{1,128}$/;
/** User ids: as room ids, plus `@` (so e-mail-like subjects fit). */
export const USER_ID_PATTERN = /^[A-Za-z0-9._~@-]{1,128}$/;
/** Tenant ids: as room ids, 1 to 64 characters. */
export const TENANT_ID_PATTERN = /^[A-Za-z0-9._~-]{1,64}$/;

/** The protocol-wide maximum; a node may enforce a smaller `maxRoomIdLength`. */
export const MAX_ID_LENGTH = 128;

export function isValidRoomId(value: unknown, maxLength = MAX_ID_LENGTH): value is string {
  return typeof value === 'string' && value.length <= maxLength && ROOM_ID_PATTERN.test(value);
}

export function isValidUserId(value: unknown): value is string {
  return typeof value === 'string' && USER_ID_PATTERN.test(value);
}

export function isValidTenantId(value: unknown): value is string {
  return typeof value === 'string' && TENANT_ID_PATTERN.test(value);
}
