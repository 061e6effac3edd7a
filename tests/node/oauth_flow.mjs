// The official TypeScript MCP SDK's client doing the MCP authorization flow
// against a real Sonde hub: discovery (401 → protected-resource metadata →
// authorization-server metadata), dynamic registration, the authorization
// request with PKCE, the token exchange, tools/list, a tool call, and a
// refresh. This script plays the browser: it opens the authorization URL
// and follows the hub's waiting page until the operator (the Rust test,
// through `sonde-hub oauth approve`) decides. Progress goes to stdout as
// JSON lines. Usage: node oauth_flow.mjs <mcp url>  (NODE_EXTRA_CA_CERTS
// names the hub CA).
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError, auth } from '@modelcontextprotocol/sdk/client/auth.js';
import { randomBytes } from 'node:crypto';

const mcpUrl = new URL(process.argv[2]);
const redirectUrl = 'http://127.0.0.1:45321/callback';
const emit = (event, data = {}) => console.log(JSON.stringify({ event, ...data }));
const deadline = Date.now() + 80_000;

// An OAuthClientProvider that keeps everything in memory.
class MemoryProvider {
  constructor() {
    this.store = {};
    this.authorizationUrl = undefined;
    this.expectedState = undefined;
  }
  get redirectUrl() { return redirectUrl; }
  get clientMetadata() {
    return {
      client_name: 'sonde-e2e-typescript',
      redirect_uris: [redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }
  state() {
    this.expectedState = randomBytes(16).toString('hex');
    return this.expectedState;
  }
  clientInformation() { return this.store.client; }
  saveClientInformation(info) { this.store.client = info; }
  tokens() { return this.store.tokens; }
  saveTokens(tokens) { this.store.tokens = tokens; }
  redirectToAuthorization(url) { this.authorizationUrl = url; }
  saveCodeVerifier(v) { this.store.verifier = v; }
  codeVerifier() { return this.store.verifier; }
  discoveryState() { return this.store.discovery; }
  saveDiscoveryState(s) { this.store.discovery = s; }
}

// The browser: open the authorization URL, follow the waiting page's
// refreshes until the hub redirects to the client with a code.
async function browse(url) {
  let res = await fetch(url, { redirect: 'manual' });
  let html = await res.text();
  if (res.status !== 200) throw new Error(`authorize answered ${res.status}: ${html}`);
  const code = /class="code">([^<]+)</.exec(html)?.[1];
  emit('waiting', { user_code: code });
  for (;;) {
    if (Date.now() > deadline) throw new Error('the operator never decided');
    const refresh = /url=([^"]+)"/.exec(html)?.[1]?.replaceAll('&amp;', '&');
    if (!refresh) throw new Error(`no refresh on the page: ${html}`);
    res = await fetch(new URL(refresh, url), { redirect: 'manual' });
    if (res.status === 302) return new URL(res.headers.get('location'));
    html = await res.text();
    if (res.status !== 200) throw new Error(`the hub answered ${res.status}: ${html}`);
  }
}

async function connect(provider) {
  const client = new Client({ name: 'sonde-e2e-typescript', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider });
  await client.connect(transport);
  return client;
}

const provider = new MemoryProvider();
const transport = new StreamableHTTPClientTransport(mcpUrl, { authProvider: provider });
const first = new Client({ name: 'sonde-e2e-typescript', version: '1.0.0' });
try {
  await first.connect(transport);
  throw new Error('connected without authorization');
} catch (e) {
  if (!(e instanceof UnauthorizedError)) throw e;
}
if (!provider.authorizationUrl) throw new Error('the SDK did not start an authorization');
emit('authorize', { client_id: provider.store.client?.client_id });
const back = await browse(provider.authorizationUrl);
if (back.searchParams.get('state') !== provider.expectedState) throw new Error('state mismatch');
const code = back.searchParams.get('code');
if (!code) throw new Error(`no code: ${back}`);
await transport.finishAuth(code);
emit('tokens');

const client = await connect(provider);
const tools = (await client.listTools()).tools.map((t) => t.name).sort();
const call = await client.callTool({ name: 'list_agents', arguments: {} });
await client.close();

// Refresh: the SDK exchanges its refresh token for a new pair.
const before = provider.store.tokens;
const result = await auth(provider, { serverUrl: mcpUrl });
const after = provider.store.tokens;
const refreshed = result === 'AUTHORIZED'
  && after.access_token !== before.access_token
  && after.refresh_token !== before.refresh_token;
const again = await connect(provider);
const call2 = await again.callTool({ name: 'list_agents', arguments: {} });
await again.close();

emit('done', {
  tools,
  call_ok: !call.isError,
  refreshed,
  after_refresh_ok: !call2.isError,
});
process.exit(0);
