/**
 * The JWT authenticator in process: every key kind, the pinned algorithm
 * list, claim checks, grants, join tokens; plus TURN REST credentials and
 * the API keyring.
 */
import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { SignJWT, exportJWK, importPKCS8, type JWK } from 'jose';
import { ApiKeyring } from '../../src/auth/api-keys.js';
import { rightsIn } from '../../src/auth/grants.js';
import { JwtAuthenticator, mintJoinToken } from '../../src/auth/jwt.js';
import { turnCredential } from '../../src/auth/turn.js';
import { isNerveError } from '../../packages/protocol/src/errors.js';

const SECRET = 's'.repeat(40);
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ed = generateKeyPairSync('ed25519');
const pem = (key: { export(o: { type: 'spki'; format: 'pem' }): string | Buffer }) => String(key.export({ type: 'spki', format: 'pem' }));

async function sign(claims: Record<string, unknown>, alg: string, key: unknown, header: Record<string, unknown> = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ exp: now + 60, ...claims }).setProtectedHeader({ alg, ...header }).sign(key as Uint8Array);
}
const hs = (claims: Record<string, unknown>) => sign(claims, 'HS256', new TextEncoder().encode(SECRET));

async function refused(promise: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(isNerveError(error), String(error));
    assert.equal(error.code, code);
    if (message) assert.match(error.message, message);
    return true;
  });
}

describe('JwtAuthenticator', () => {
  let jwksServer: Server;
  let jwksUrl: string;
  let fetches = 0;
  before(async () => {
    const jwk: JWK = { ...(await exportJWK(rsa.publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' };
    jwksServer = createServer((_request, response) => {
      fetches += 1;
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
    jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/jwks.json`;
  });
  after(() => new Promise<void>((resolve) => jwksServer.close(() => resolve())));

  it('accepts HS256 with the secret; sub, tenant, exp, grants, signal', async () => {
    const auth = new JwtAuthenticator({ secret: SECRET, defaultTenant: 'd' });
    const identity = await auth.authenticate({
      token: await hs({ sub: 'alice', tenant: 'acme', rooms: [{ prefix: 'team-', rights: ['join', 'publish'] }], signal: true }),
    });
    assert.equal(identity.user, 'alice');
    assert.equal(identity.tenant, 'acme');
    assert.equal(typeof identity.expiresAt, 'number');
    assert.deepEqual(identity.grants, [{ prefix: 'team-', rights: ['join', 'publish'] }]);
    assert.equal(identity.signal, true);
    assert.equal((await auth.authenticate({ token: await hs({ sub: 'bob' }) })).tenant, 'd');
  });

  it('accepts RS256, ES256 and EdDSA with a PEM public key', async () => {
    for (const [pair, alg] of [
      [rsa, 'RS256'],
      [ec, 'ES256'],
      [ed, 'EdDSA'],
    ] as const) {
      const auth = new JwtAuthenticator({ publicKey: pem(pair.publicKey), defaultTenant: 'd' });
      const key = await importPKCS8(String(pair.privateKey.export({ type: 'pkcs8', format: 'pem' })), alg);
      assert.equal((await auth.authenticate({ token: await sign({ sub: 'u' }, alg, key) })).user, 'u', alg);
    }
  });

  it('refuses alg none, key confusion, expired, future nbf, wrong aud and iss', async () => {
    const auth = new JwtAuthenticator({ publicKey: pem(rsa.publicKey), defaultTenant: 'd', audience: 'nerve', issuer: 'https://issuer.test' });
    const rsaKey = await importPKCS8(String(rsa.privateKey.export({ type: 'pkcs8', format: 'pem' })), 'RS256');
    const good = { sub: 'u', aud: 'nerve', iss: 'https://issuer.test' };
    assert.equal((await auth.authenticate({ token: await sign(good, 'RS256', rsaKey) })).user, 'u');
    const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    await refused(auth.authenticate({ token: `${b64({ alg: 'none' })}.${b64(good)}.` }), 'auth_failed');
    // HS256 signed with the RSA public key's PEM text as the HMAC secret.
    const confused = await sign(good, 'HS256', new TextEncoder().encode(pem(rsa.publicKey)));
    await refused(auth.authenticate({ token: confused }), 'auth_failed', /algorithm not allowed/);
    const now = Math.floor(Date.now() / 1000);
    await refused(auth.authenticate({ token: await sign({ ...good, exp: now - 60 }, 'RS256', rsaKey) }), 'auth_failed', /expired/);
    await refused(auth.authenticate({ token: await sign({ ...good, nbf: now + 60 }, 'RS256', rsaKey) }), 'auth_failed', /nbf/);
    await refused(auth.authenticate({ token: await sign({ ...good, aud: 'other' }, 'RS256', rsaKey) }), 'auth_failed', /aud/);
    await refused(auth.authenticate({ token: await sign({ ...good, iss: 'https://evil.test' }, 'RS256', rsaKey) }), 'auth_failed', /iss/);
    await refused(auth.authenticate({ token: 'not.a.jwt' }), 'auth_failed');
  });

  it('verifies with a JWKS (cached) and refuses an unknown kid', async () => {
    const auth = new JwtAuthenticator({ jwksUrl, defaultTenant: 'd', algorithms: ['RS256'] });
    const rsaKey = await importPKCS8(String(rsa.privateKey.export({ type: 'pkcs8', format: 'pem' })), 'RS256');
    const before = fetches;
    for (let i = 0; i < 3; i++) assert.equal((await auth.authenticate({ token: await sign({ sub: 'j' }, 'RS256', rsaKey, { kid: 'k1' }) })).user, 'j');
    assert.equal(fetches - before, 1, 'the key set is fetched once and cached');
    await refused(auth.authenticate({ token: await sign({ sub: 'j' }, 'RS256', rsaKey, { kid: 'nope' }) }), 'auth_failed', /key id unknown/);
  });

  it('refuses malformed claims and join tokens at connect', async () => {
    const auth = new JwtAuthenticator({ secret: SECRET, defaultTenant: 'd' });
    await refused(auth.authenticate({ token: await hs({ sub: 'bad user' }) }), 'auth_failed');
    await refused(auth.authenticate({ token: await hs({ sub: 'u', tenant: 'a:b' }) }), 'auth_failed');
    await refused(auth.authenticate({ token: await hs({ sub: 'u', rooms: [{ rights: ['join'] }] }) }), 'auth_failed', /rooms/);
    await refused(auth.authenticate({ token: await hs({ sub: 'u', rooms: [{ room: 'r', rights: ['fly'] }] }) }), 'auth_failed');
    await refused(auth.authenticate({ token: await hs({ sub: 'u', room: 'r' }) }), 'auth_failed', /join token/);
    await refused(auth.authenticate({}), 'auth_failed');
  });

  it('pins algorithms against the configured keys at construction', () => {
    assert.throws(() => new JwtAuthenticator({ publicKey: pem(rsa.publicKey), algorithms: ['HS256'], defaultTenant: 'd' }), /HMAC secret/);
    assert.throws(() => new JwtAuthenticator({ secret: SECRET, algorithms: ['RS256'], defaultTenant: 'd' }), /public key/);
    assert.throws(() => new JwtAuthenticator({ defaultTenant: 'd' }), /needs a secret/);
  });

  it('checks join tokens: user, tenant and room must match; grantsRequired leaves rooms closed', async () => {
    const auth = new JwtAuthenticator({ secret: SECRET, defaultTenant: 'd', grantsRequired: true });
    const identity = await auth.authenticate({ token: await hs({ sub: 'alice', tenant: 't1' }) });
    assert.deepEqual(identity.grants, []);
    assert.equal(rightsIn(identity.grants, 'r1').size, 0);
    const { token } = await mintJoinToken({ secret: SECRET, user: 'alice', tenant: 't1', room: 'r1', ttlSeconds: 60 });
    assert.deepEqual((await auth.verifyJoinToken(token, identity, 'r1')).rights, ['join', 'publish', 'presence']);
    await refused(auth.verifyJoinToken(token, identity, 'r2'), 'forbidden');
    await refused(auth.verifyJoinToken(token, { ...identity, user: 'bob' }, 'r1'), 'forbidden');
    await refused(auth.verifyJoinToken(token, { ...identity, tenant: 't2' }, 'r1'), 'forbidden');
    await refused(auth.verifyJoinToken(await hs({ sub: 'alice', tenant: 't1' }), identity, 'r1'), 'forbidden', /no `room` claim/);
  });
});

describe('room grants', () => {
  it('unions matching grants; undefined grants allow everything', () => {
    const grants = [
      { room: 'lobby', rights: ['join' as const] },
      { prefix: 'lob', rights: ['publish' as const] },
      { prefix: '', rights: ['presence' as const] },
    ];
    assert.deepEqual([...rightsIn(grants, 'lobby')].sort(), ['join', 'presence', 'publish']);
    assert.deepEqual([...rightsIn(grants, 'other')], ['presence']);
    assert.equal(rightsIn(undefined, 'x').size, 4);
  });
});

describe('TURN REST credentials', () => {
  it('follows coturn use-auth-secret: username expiry:user, credential base64 HMAC-SHA1', () => {
    const now = 1_700_000_000_000;
    const credential = turnCredential({ secret: 'turn-secret', urls: ['turn:turn.example:3478'], ttlSeconds: 3600 }, 'alice', now);
    assert.equal(credential.username, `${1_700_000_000 + 3600}:alice`);
    assert.equal(credential.credential, createHmac('sha1', 'turn-secret').update(credential.username).digest('base64'));
    assert.equal(credential.expiresAt, (1_700_000_000 + 3600) * 1000);
  });
});

describe('API keyring', () => {
  it('finds the key and its scopes; refuses others', () => {
    const ring = new ApiKeyring([
      { key: 'a'.repeat(30), scopes: ['publish'] },
      { key: 'b'.repeat(30), scopes: ['history:read', 'turn:mint'], name: 'reader' },
    ]);
    assert.deepEqual([...(ring.find('a'.repeat(30))?.scopes ?? [])], ['publish']);
    assert.equal(ring.find('b'.repeat(30))?.name, 'reader');
    assert.equal(ring.find('c'.repeat(30)), undefined);
    assert.equal(ring.find(''), undefined);
  });
});
