/**
 * The connection side: `NerveProvider` puts a client in context (one it is
 * given, or one it makes, connects while mounted and closes after), and
 * `useNerve()` reads the client and its connection state.
 */
import { createContext, createElement, useContext, useEffect, useState, useSyncExternalStore, type ReactNode } from 'react';
import { NerveClient, type ClientState, type NerveClientError, type NerveClientOptions, type WelcomeFrame } from '@nerve-rt/client';
import { Lease, perObject, Store } from './store.js';

/** The connection as `useNerve()` shows it. */
export interface NerveConnection {
  /** The client (from the provider). */
  client: NerveClient;
  /** `connecting`, `connected`, `reconnecting` or `closed` (`client.state`). */
  state: ClientState;
  /** The authenticated user id, once connected. */
  user: string | undefined;
  /** The current connection id, while connected. */
  connId: string | undefined;
  /** The latest welcome (node, limits, ICE servers), once connected. */
  welcome: WelcomeFrame | undefined;
  /** Why the client stopped, while it is `closed` after a failure or `close()` (the `state` event's `error`). */
  error: NerveClientError | undefined;
}

/** What the connection store reads of a client: `NerveClient` fits, tests pass a fake. */
export type ConnectionSource = Pick<NerveClient, 'state' | 'user' | 'connId' | 'welcome' | 'on'>;

type ConnectionSnapshot = Omit<NerveConnection, 'client'>;

/** The connection state of one client as a store; listens to the client for the client's life. */
export class ConnectionStore extends Store<ConnectionSnapshot> {
  readonly #client: ConnectionSource;
  #error: NerveClientError | undefined;

  constructor(client: ConnectionSource) {
    super(read(client, undefined));
    this.#client = client;
    client.on('state', ({ to, error }) => {
      this.#error = to === 'closed' ? error : undefined;
      this.#update();
    });
    client.on('welcome', () => this.#update());
  }

  #update(): void {
    const next = read(this.#client, this.#error);
    const now = this.getSnapshot();
    const same = (Object.keys(next) as Array<keyof ConnectionSnapshot>).every((key) => next[key] === now[key]);
    if (!same) this.set(next);
  }
}

function read(client: ConnectionSource, error: NerveClientError | undefined): ConnectionSnapshot {
  return { state: client.state, user: client.user, connId: client.connId, welcome: client.welcome, error };
}

export const connectionStore = perObject((client: ConnectionSource) => new ConnectionStore(client));

/** Connects a client the provider owns while some provider holds it; closes it after the last let go. */
const ownedConnection = perObject(
  (client: NerveClient) =>
    new Lease(
      // A failure shows in the state (`closed` with its error); the promise has nobody else to tell.
      () => void client.connect().catch(() => {}),
      () => void client.close(),
    ),
);

const NerveContext = createContext<NerveClient | undefined>(undefined);

/** Props of {@link NerveProvider}: a `client`, or the `options` to make one. */
export interface NerveProviderProps {
  /**
   * A client your app made and owns: the provider hands it down and neither
   * connects nor closes it (call `client.connect()` yourself).
   */
  client?: NerveClient;
  /**
   * Or the options of a client the provider makes: connected on mount, closed
   * after unmount. Read once: to connect elsewhere (another user or URL),
   * remount the provider (give it a `key`).
   */
  options?: NerveClientOptions;
  /** The app. */
  children?: ReactNode;
}

/**
 * Puts a `NerveClient` in context for the hooks below it. Under StrictMode
 * the client it makes opens one socket, not two (see `Lease`).
 *
 * ```tsx
 * <NerveProvider options={{ url: 'wss://nerve.example.com/ws', getToken }}>
 *   <App />
 * </NerveProvider>
 * ```
 */
export function NerveProvider({ client, options, children }: NerveProviderProps): ReactNode {
  // StrictMode may call this initializer twice and keep one result: harmless, a client opens no socket until connect().
  const [owned] = useState(() => {
    if (client) return undefined;
    if (!options) throw new TypeError('NerveProvider needs a client or options');
    return new NerveClient(options);
  });
  useEffect(() => (owned ? ownedConnection(owned).acquire() : undefined), [owned]);
  return createElement(NerveContext.Provider, { value: client ?? owned }, children);
}

/** The provider's client; throws outside a `NerveProvider`. */
export function useNerveClient(): NerveClient {
  const client = useContext(NerveContext);
  if (!client) throw new Error('useNerve and the room and call hooks need a <NerveProvider> above them');
  return client;
}

/** The client and its connection state; re-renders on every state change and welcome. */
export function useNerve(): NerveConnection {
  const client = useNerveClient();
  const store = connectionStore(client);
  const snapshot = useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot);
  return { client, ...snapshot };
}
