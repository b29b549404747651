// nerve demo page: what to tell a person for each refusal, from the error codes of
// docs/protocol.md ("Error codes", "Close codes") and the SDK's ClientErrorCode.
// Branches on `error.code`, never on the message. Sets `window.nerveDemoErrors`.
'use strict';

(() => {
  const seconds = (ms) => `${Math.max(1, Math.ceil((ms ?? 1000) / 1000))} s`;

  /**
   * Sentences per code. `ctx`: { action: 'connect' | 'join' | 'send' | 'edit' | 'call', room, token, joinToken }
   * (token / joinToken: whether the person gave one).
   */
  const TEXT = {
    auth_failed: (ctx) =>
      ctx.token
        ? 'The server refused your sign-in token: it is expired, not yet valid, signed with another key, or for another audience or issuer. Get a new token and try again.'
        : 'The server asks for a sign-in token (it runs with JWT auth), so a name alone is not enough. Paste a token under "Sign-in token", or open this page with ?token=… in the address.',
    forbidden: (ctx) => {
      if (ctx.action === 'join') {
        return ctx.joinToken
          ? `The join token for “${ctx.room}” was refused: it is expired, or made for another user, tenant or room.`
          : `Your token does not allow joining “${ctx.room}” (its room grants lack "join"). Ask the backend for a join token for this room, or use a token that grants it.`;
      }
      if (ctx.action === 'send') return `Your token does not allow writing in “${ctx.room}” (no "publish" right).`;
      if (ctx.action === 'call') return 'Your token does not allow calling this person (no "signal" right in a room you share).';
      if (ctx.action === 'edit') return 'Only its author (or a moderator) may edit or delete a message.';
      return 'The server refused this request for your token.';
    },
    refresh_failed: () => 'The server refused the renewed sign-in token; you will be signed out when the current one expires.',
    too_many_connections: () =>
      'You already have the most connections this server allows for one user (other tabs or devices). Close one of them and try again.',
    quota_exceeded: (ctx, error) => {
      switch (error.quota) {
        case 'connections':
          return "This app's connection quota is used up (too many people are connected right now). Try again later.";
        case 'rooms':
          return `This app has used up its quota of rooms, so “${ctx.room}” cannot be opened now. Try a room that is already in use, or later.`;
        case 'publishes':
          return `This app sends too many messages right now. Try again in ${seconds(error.retryAfterMs)}.`;
        case 'signals':
          return `This app sends too many call signals right now. Try again in ${seconds(error.retryAfterMs)}.`;
        case 'stored_bytes':
          return "This app's message storage is full; the message was not stored.";
        default:
          return 'A quota of this app refused the request.';
      }
    },
    too_many_rooms: () => 'You are in as many rooms as one connection may be. Leave one first.',
    invalid_room: (ctx) => `“${ctx.room}” is not a valid room name: use letters, digits and . _ ~ - only.`,
    invalid_user: () => 'That is not a valid user name: use letters, digits and . _ ~ @ - only.',
    not_joined: () => 'You are no longer in this room. Join it again.',
    message_not_found: () => 'That message is no longer in the room’s history.',
    presence_too_large: () => 'Your status is too long for this server.',
    epoch_mismatch: () => "The room's history was reset; older messages are gone.",
    rate_limited: (ctx, error) => `Slow down: too many requests. Try again in ${seconds(error.retryAfterMs)}.`,
    peer_offline: () => 'That person is offline.',
    unsupported_version: () => 'This page speaks a protocol version the server does not support. Reload the page.',
    bus_unavailable: () => 'Part of the server cluster cannot be reached: people on other nodes may not get this. Try again shortly.',
    unavailable: () => 'The server cannot do this right now (a storage lane is down). Try again shortly.',
    outcome_unknown: () => 'The server did not confirm in time; it may or may not have gone through.',
    internal: () => 'The server hit an unexpected fault. Try again.',
    // The SDK's own codes.
    timeout: () => 'The server did not answer in time. Check your connection and try again.',
    connect_timeout: () => 'The server did not answer: it may be down or unreachable. Try again later.',
    closed: () => 'The connection was closed.',
    disconnected: () => 'The connection dropped before the server answered. Try again.',
    token_failed: () => 'Could not get a sign-in token.',
    transport_failed: () => 'Could not open a connection to the server from this browser.',
    bad_frame: () => 'The server sent something this page does not understand. Reload the page.',
  };

  /** Close codes that end a session, for the `disconnected` event. */
  const CLOSES = {
    4001: 'You were signed out: your credentials were refused.',
    4010: 'Your sign-in token expired. Sign in again with a new one.',
    4011: 'Too many connections for your user or this app. Close another tab and reload.',
    4012: 'An operator disconnected you.',
  };

  function describe(error, ctx = {}) {
    if (error && typeof error === 'object' && typeof error.code === 'string') {
      const text = TEXT[error.code];
      if (text) return `${text(ctx, error)} (${error.code})`;
      return `${error.message} (${error.code})`;
    }
    return error instanceof Error ? error.message : String(error);
  }

  function describeClose(code) {
    return CLOSES[code];
  }

  window.nerveDemoErrors = { describe, describeClose };
})();
