// An OAuth client built on the official TypeScript SDK 1.x (`@modelcontextprotocol/sdk`): its
// `OAuthClientProvider` and `StreamableHTTPClientTransport`, starting with no token. The SDK
// does discovery, dynamic client registration, PKCE and the token exchange; this file holds
// only what an application supplies: storage in memory, a loopback callback server, and a
// "browser" (consent.cjs, run on every redirectToAuthorization).
//
// Usage: OWNER_CREDENTIAL=… MCP_MODULES=DIR [CLIENT_NAME=…] [consent.cjs's variables]
//        node oauth_client.cjs URL
//
// Connects, lists the tools, prints {"event": "waiting"} and reads one line on stdin (the test
// revokes the key meanwhile), then lists the tools again: a 401 there sends the client back to
// the consent page, after which the list is asked for once more. Prints one JSON object per
// line as things happen (see `emit` calls), {"event": "done"} at the end, or
// {"event": "error", "error": ...} (exit 2). Tokens are never printed, only their prefix.

const http = require("node:http");
const path = require("node:path");
const readline = require("node:readline");
const { spawn } = require("node:child_process");
const { createRequire } = require("node:module");
const crypto = require("node:crypto");

const from = createRequire(path.join(process.env.MCP_MODULES, "package.json"));
const { Client } = from("@modelcontextprotocol/sdk/client/index.js");
const { StreamableHTTPClientTransport } = from("@modelcontextprotocol/sdk/client/streamableHttp.js");
const { UnauthorizedError } = from("@modelcontextprotocol/sdk/client/auth.js");

const CLIENT_NAME = process.env.CLIENT_NAME || "TypeScript SDK OAuth test";
const CONSENT = path.join(__dirname, "consent.cjs");

function emit(event) {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

/** A fetch that reports every request the SDK makes (the body too, when it was refused). */
async function loggingFetch(input, init) {
  const response = await fetch(input, init);
  const event = {
    event: "http",
    method: init?.method ?? "GET",
    url: String(input instanceof Request ? input.url : input),
    status: response.status,
  };
  const challenge = response.headers.get("www-authenticate");
  if (challenge) event.www_authenticate = challenge;
  if (!response.ok) event.body = await response.clone().text();
  emit(event);
  return response;
}

/** Runs consent.cjs on `url`; resolves to its exit status, JSON line and stderr. */
function consent(url) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CONSENT, url], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.on("close", (status) => {
      let result = null;
      try {
        result = JSON.parse(stdout);
      } catch {}
      resolve({ status, result, stderr });
    });
  });
}

/** The application's side of the SDK's OAuth: everything kept in memory, one redirect at a time. */
class Provider {
  constructor(redirectUrl) {
    this._redirectUrl = redirectUrl;
    this._pending = null;
  }

  get redirectUrl() {
    return this._redirectUrl;
  }

  get clientMetadata() {
    return {
      client_name: CLIENT_NAME,
      redirect_uris: [this._redirectUrl],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }

  state() {
    this._state = crypto.randomBytes(16).toString("base64url");
    return this._state;
  }

  clientInformation() {
    return this._client;
  }

  saveClientInformation(info) {
    this._client = info;
    emit({
      event: "registered",
      client_id: info.client_id,
      client_name: info.client_name,
      has_secret: info.client_secret !== undefined,
      token_endpoint_auth_method: info.token_endpoint_auth_method,
      redirect_uris: info.redirect_uris,
    });
  }

  tokens() {
    return this._tokens;
  }

  saveTokens(tokens) {
    this._tokens = tokens;
    emit({
      event: "tokens",
      access_token_prefix: tokens.access_token.slice(0, 4),
      token_type: tokens.token_type,
      expires_in: tokens.expires_in,
      refresh_token: tokens.refresh_token !== undefined,
    });
  }

  saveCodeVerifier(verifier) {
    this._verifier = verifier;
  }

  codeVerifier() {
    return this._verifier;
  }

  invalidateCredentials(scope) {
    emit({ event: "invalidate", scope });
    if (scope === "all" || scope === "tokens") this._tokens = undefined;
    if (scope === "all" || scope === "client") this._client = undefined;
  }

  /** The hook the SDK calls to send the person to the authorization server: opens the browser. */
  redirectToAuthorization(url) {
    emit({ event: "redirect", url: url.href });
    let arrived;
    const callback = new Promise((resolve) => (arrived = resolve));
    this._pending = { callback, arrived, consent: consent(url.href) };
  }

  /** The callback server's request for the pending redirect. */
  callback(params) {
    this._pending?.arrived(params);
  }

  /** The code the pending redirect brought back, once the browser is done. */
  async authorizationCode() {
    const pending = this._pending;
    if (!pending) throw new Error("no authorization is pending");
    const browser = await pending.consent;
    emit({ event: "consent", status: browser.status, ...browser.result });
    if (browser.status !== 0) throw new Error(`consent.cjs failed:\n${browser.stderr}`);
    const params = await pending.callback;
    if (this._pending === pending) this._pending = null;
    const error = params.get("error");
    emit({
      event: "callback",
      code: params.has("code"),
      state_matches: params.get("state") === this._state,
      error: error ?? undefined,
    });
    if (error) throw new Error(`the authorization server answered ${error}`);
    if (params.get("state") !== this._state) throw new Error("the callback's state is not ours");
    return params.get("code");
  }
}

/** A loopback server for the redirect URI; `onCallback` gets each callback's query. */
function callbackServer(onCallback) {
  const server = http.createServer((request, response) => {
    const url = new URL(request.url, "http://127.0.0.1");
    if (url.pathname !== "/callback") {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { "content-type": "text/html" });
    response.end("<!doctype html><p>Signed in. You can close this window.</p>");
    onCallback(url.searchParams);
  });
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => resolve(server));
  });
}

async function listTools(client) {
  const names = [];
  let cursor;
  do {
    const page = await client.listTools(cursor === undefined ? {} : { cursor });
    names.push(...page.tools.map((t) => t.name));
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  emit({ event: "tools", names });
}

/** A client connected through OAuth: a first connect that the server refuses sends the person
 * to the consent page; with the code exchanged, a new transport connects. */
async function connect(url, provider) {
  const transport = () => new StreamableHTTPClientTransport(url, { authProvider: provider, fetch: loggingFetch });
  const first = transport();
  const client = new Client({ name: "ts-oauth", version: "1" });
  try {
    await client.connect(first);
    return { client, transport: first };
  } catch (error) {
    if (!(error instanceof UnauthorizedError)) throw error;
    emit({ event: "unauthorized", during: "connect", message: error.message });
  }
  await first.finishAuth(await provider.authorizationCode());
  const second = transport();
  const connected = new Client({ name: "ts-oauth", version: "1" });
  await connected.connect(second);
  return { client: connected, transport: second };
}

async function main() {
  const url = new URL(process.argv[2]);
  let provider;
  const server = await callbackServer((params) => provider.callback(params));
  provider = new Provider(`http://127.0.0.1:${server.address().port}/callback`);
  try {
    const { client, transport } = await connect(url, provider);
    emit({ event: "connected", protocol_version: transport.protocolVersion });
    await listTools(client);

    emit({ event: "waiting" });
    const lines = readline.createInterface({ input: process.stdin });
    await new Promise((resolve) => lines.once("line", resolve));
    lines.close();

    try {
      await listTools(client);
    } catch (error) {
      if (!(error instanceof UnauthorizedError)) throw error;
      emit({ event: "unauthorized", during: "tools/list", message: error.message });
      await transport.finishAuth(await provider.authorizationCode());
      await listTools(client);
    }
    await client.close();
  } finally {
    server.close();
  }
}

main().then(
  () => emit({ event: "done" }),
  (error) => {
    emit({ event: "error", error: `${error?.name}: ${error?.message}` });
    process.exit(2);
  },
);
