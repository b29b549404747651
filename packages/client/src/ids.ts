/** Client message ids (`cmid`): random, so a retry after reconnect is recognised as the same message. */

const HEX = '0123456789abcdef';

/**
 * 128 random bits as 32 hex characters. Uses `crypto.getRandomValues`, which,
 * unlike `crypto.randomUUID`, also exists on pages served over plain http
 * from a LAN address (not a "secure context").
 */
export function randomId(): string {
  const bytes = new Uint8Array(16);
  const webCrypto = (globalThis as { crypto?: { getRandomValues?: (array: Uint8Array) => Uint8Array } }).crypto;
  if (webCrypto?.getRandomValues) {
    webCrypto.getRandomValues(bytes);
  } else {
    for (let i = 0; i < bytes.length; i += 1) bytes[i] = Math.floor(Math.random() * 256);
  }
  let text = '';
  for (const byte of bytes) text += HEX[byte >> 4]! + HEX[byte & 15]!;
  return text;
}
