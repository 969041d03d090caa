// node-oidc-provider as a peer for `tessera-bench peers` (bench/src/peers.rs copies this file
// and the package files beside it into its cache dir and runs `npm ci` there once).
//
// The package's own in-memory adapter, one RS256 key made at start-up, and one confidential
// client allowed client_credentials. Its access tokens are RS256 JWTs for one resource server
// (resource indicators), so a grant costs one RS256 signature here as it does in Tessera; the
// package's default, an opaque token kept in memory, would compare a map insert with a
// signature.
//
// Environment: PEER_PORT (it listens on 127.0.0.1 only), PEER_CLIENT_ID, PEER_CLIENT_SECRET.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.env.PEER_PORT);
const clientId = process.env.PEER_CLIENT_ID;
const clientSecret = process.env.PEER_CLIENT_SECRET;
if (!port || !clientId || !clientSecret) {
  console.error('PEER_PORT, PEER_CLIENT_ID and PEER_CLIENT_SECRET are required');
  process.exit(2);
}

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = {
  ...privateKey.export({ format: 'jwk' }),
  kid: 'bench-rs256',
  alg: 'RS256',
  use: 'sig',
};
const resource = 'urn:tessera-bench:api';
const tokenLifetimeSecs = 3600;

const provider = new Provider(`http://127.0.0.1:${port}`, {
  jwks: { keys: [signingKey] },
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: 'api',
    },
  ],
  scopes: ['api'],
  // No interaction is ever used; keys so the package does not warn about unsigned cookies.
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  ttl: { ClientCredentials: tokenLifetimeSecs },
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      getResourceServerInfo: () => ({
        scope: 'api',
        audience: resource,
        accessTokenTTL: tokenLifetimeSecs,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on 127.0.0.1:${port}`);
});
