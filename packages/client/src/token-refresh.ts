/**
 * Keeping the connection's token fresh: a timer that asks for a new token
 * shortly before the current one expires (the server closes an expired
 * connection with 4010), and the `getToken` call with its failures typed.
 * The `refresh` request itself stays NerveClient's (`refreshToken`, public),
 * which the timer calls.
 */
import { ClientErrorCode, NerveClientError } from './errors.js';
import type { NerveClientOptions } from './types.js';

/** What the refresh timer needs of its client. */
export interface TokenRefreshHost {
  /** The connection's generation: a timer set on an older connection does nothing. */
  generation(): number;
  /** Send `refresh` with a token from `getToken` (NerveClient.refreshToken). */
  refresh(): Promise<unknown>;
  /** Report a refresh that failed, as an `error` event. */
  error(error: NerveClientError): void;
}

export class TokenRefresh {
  readonly #options: Pick<NerveClientOptions, 'getToken' | 'refreshLeadMs'>;
  readonly #host: TokenRefreshHost;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: Pick<NerveClientOptions, 'getToken' | 'refreshLeadMs'>, host: TokenRefreshHost) {
    this.#options = options;
    this.#host = host;
  }

  /** Ask `getToken` for a new token shortly before `expiresAt` and send it with `refresh`. */
  schedule(expiresAt: number | undefined): void {
    this.cancel();
    if (expiresAt === undefined || !this.#options.getToken) return;
    const remaining = expiresAt - Date.now();
    const lead = this.#options.refreshLeadMs ?? Math.min(60_000, Math.max(1_000, Math.floor(remaining / 5)));
    const generation = this.#host.generation();
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        if (generation !== this.#host.generation()) return;
        this.#host.refresh().catch((error: unknown) => {
          // The server closes the connection at expiry (4010); the reconnect fetches a new token.
          if (generation === this.#host.generation()) {
            this.#host.error(
              error instanceof NerveClientError ? error : new NerveClientError(ClientErrorCode.TokenFailed, 'token refresh failed', { cause: error }),
            );
          }
        });
      },
      Math.min(Math.max(0, remaining - lead), 2 ** 31 - 1),
    );
  }

  /** Stop the timer (the connection dropped or closed). */
  cancel(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** A new token from the `getToken` option; rejects with `token_failed` when there is none. */
  async fetch(): Promise<string> {
    const getToken = this.#options.getToken;
    if (!getToken) throw new NerveClientError(ClientErrorCode.TokenFailed, 'no token given and no getToken option');
    let token: string;
    try {
      token = await getToken();
    } catch (cause) {
      throw new NerveClientError(ClientErrorCode.TokenFailed, 'getToken failed', { cause });
    }
    if (typeof token !== 'string' || token === '') throw new NerveClientError(ClientErrorCode.TokenFailed, 'getToken returned an empty token');
    return token;
  }
}
