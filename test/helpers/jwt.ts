/**
 * HS256 tokens for tests of nodes started with `--auth-secret`: the
 * connection (or join) token an application backend would mint.
 */
import { SignJWT } from 'jose';

export interface TestTokenOptions {
  /** Extra claims (`tenant`, `rooms`, `room`, ...). Default none. */
  claims?: Record<string, unknown>;
  /** Seconds from now until `exp`. Default 600. */
  expiresIn?: number;
  /** Seconds before now for `iat`. Default 0. */
  issuedAgo?: number;
}

/** A token for `user` (`sub`), signed with `secret`. */
export function hs256Token(secret: string, user: string, options: TestTokenOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT(options.claims ?? {})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(user)
    .setIssuedAt(now - (options.issuedAgo ?? 0))
    .setExpirationTime(now + (options.expiresIn ?? 600))
    .sign(new TextEncoder().encode(secret));
}
