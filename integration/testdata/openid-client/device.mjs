// The openid-client sample of docs/clients.md, run by
// openid_client_e2e_test.go (build tag nodeclients) against the module.
// Env: UPSTREAM_ISSUER, SITE, CLIENT_ID. Prints the user code, waits for a
// line on stdin (the test approves meanwhile), polls, refreshes, prints
// what it got as JSON.
import * as client from 'openid-client'
import { createInterface } from 'node:readline'

const { UPSTREAM_ISSUER, SITE, CLIENT_ID } = process.env
const insecure = { execute: [client.allowInsecureRequests] } // plain HTTP in the test

// The upstream's metadata (for its issuer and keys), with our two
// endpoints in place of its own.
const upstream = await client.discovery(new URL(UPSTREAM_ISSUER), CLIENT_ID, undefined, undefined, insecure)
const config = new client.Configuration(
  {
    ...upstream.serverMetadata(),
    device_authorization_endpoint: `${SITE}/device/code`,
    token_endpoint: `${SITE}/device/token`,
  },
  CLIENT_ID,
  undefined,
  client.None(),
)
client.allowInsecureRequests(config)

const da = await client.initiateDeviceAuthorization(config, { scope: 'openid profile' })
console.log(JSON.stringify({ user_code: da.user_code, verification_uri: da.verification_uri }))

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]()
await lines.next()

const tokens = await client.pollDeviceAuthorizationGrant(config, da)
const claims = tokens.claims()
const fresh = await client.refreshTokenGrant(config, tokens.refresh_token)
console.log(JSON.stringify({
  access_token: !!tokens.access_token,
  iss: claims.iss,
  aud: claims.aud,
  refreshed_access_token: !!fresh.access_token,
}))
process.exit(0)
