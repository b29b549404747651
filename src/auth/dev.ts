/**
 * Development authenticator: trusts the user id the client chooses. The node
 * refuses to use it when an auth secret is configured, and warns at start-up
 * whenever it is active.
 */
import { ErrorCode } from '../../packages/protocol/src/codes.js';
import { NerveError } from '../../packages/protocol/src/errors.js';
import { isValidUserId } from '../../packages/protocol/src/ids.js';
import type { AuthRequest, Authenticator, Identity } from './authenticator.js';

export class DevAuthenticator implements Authenticator {
  readonly kind = 'dev';
  constructor(private readonly tenant: string) {}

  async authenticate(request: AuthRequest): Promise<Identity> {
    if (!isValidUserId(request.user)) {
      throw new NerveError(ErrorCode.AuthFailed, 'dev auth needs `user`: 1-128 characters of A-Z a-z 0-9 . _ ~ @ -');
    }
    return { user: request.user, tenant: this.tenant };
  }
}
