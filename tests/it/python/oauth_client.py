"""An OAuth client built on the official MCP Python SDK 2.x (`mcp` on PyPI): its
`OAuthClientProvider` (an httpx2 auth flow) with a `TokenStorage`, starting with no token. The
SDK does discovery, dynamic client registration, PKCE, the token exchange and the retry; this
file holds only what an application supplies: storage in memory, a loopback callback server
(the callback_handler) and a "browser" (the redirect_handler runs ../node/consent.cjs).

Usage: OWNER_CREDENTIAL=… MCP_MODULES=DIR [CLIENT_NAME=…] [MCP_MODE=auto|legacy]
       [consent.cjs's variables] python oauth_client.py URL

Connects, lists the tools, prints {"event": "waiting"} and reads one line on stdin (the test
revokes the key meanwhile), then lists the tools again, past the client's cache: the SDK meets
the 401, goes back to the consent page and retries by itself. Prints one JSON object per line
as things happen, {"event": "done"} at the end, or {"event": "error", "error": ...} (exit 2).
Tokens are never printed, only their prefix.
"""

import asyncio
import json
import os
import sys
import traceback
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
from mcp import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

CONSENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "node", "consent.cjs")


def emit(event: dict) -> None:
    print(json.dumps(event), flush=True)


class MemoryStorage:
    """The SDK's TokenStorage, in memory: what a real client would keep on disk."""

    def __init__(self):
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens
        emit({"event": "tokens", "access_token_prefix": tokens.access_token[:4],
              "token_type": tokens.token_type, "expires_in": tokens.expires_in,
              "refresh_token": tokens.refresh_token is not None})

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info
        emit({"event": "registered", "client_id": client_info.client_id,
              "client_name": client_info.client_name,
              "has_secret": client_info.client_secret is not None,
              "token_endpoint_auth_method": client_info.token_endpoint_auth_method,
              "redirect_uris": [str(u) for u in client_info.redirect_uris or []]})


class Browser:
    """The redirect and callback handlers: consent.cjs on the URL, then the callback's query."""

    def __init__(self):
        self.callbacks: asyncio.Queue = asyncio.Queue()
        self.consent: asyncio.Task | None = None
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/callback"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        target = head.split(b" ", 2)[1].decode()
        parts = urlsplit(target)
        if parts.path == "/callback":
            body = b"<!doctype html><p>Signed in. You can close this window.</p>"
            status = b"200 OK"
            await self.callbacks.put({k: v[0] for k, v in parse_qs(parts.query).items()})
        else:
            body, status = b"", b"404 Not Found"
        writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: text/html\r\nConnection: close\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()
        writer.close()

    async def redirect(self, url: str) -> None:
        emit({"event": "redirect", "url": url})
        self.consent = asyncio.create_task(self._run_consent(url))

    async def _run_consent(self, url: str) -> dict:
        child = await asyncio.create_subprocess_exec(
            "node", CONSENT, url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        stdout, stderr = await child.communicate()
        try:
            result = json.loads(stdout)
        except ValueError:
            result = {}
        return {"status": child.returncode, "result": result, "stderr": stderr.decode()}

    async def callback(self) -> AuthorizationCodeResult:
        if self.consent is None:
            raise RuntimeError("no authorization is pending")
        browser, self.consent = await self.consent, None
        emit({"event": "consent", "status": browser["status"], **browser["result"]})
        if browser["status"] != 0:
            raise RuntimeError(f"consent.cjs failed:\n{browser['stderr']}")
        params = await self.callbacks.get()
        emit({"event": "callback", "code": "code" in params, "error": params.get("error")})
        if "error" in params:
            raise RuntimeError(f"the authorization server answered {params['error']}")
        return AuthorizationCodeResult(code=params["code"], state=params.get("state"),
                                       iss=params.get("iss"))


async def log_response(response: httpx2.Response) -> None:
    """Reports every request the SDK makes (the body too, when it was refused)."""
    event = {"event": "http", "method": response.request.method, "url": str(response.request.url),
             "status": response.status_code}
    challenge = response.headers.get("www-authenticate")
    if challenge:
        event["www_authenticate"] = challenge
    if response.status_code >= 400:
        event["body"] = (await response.aread()).decode(errors="replace")
    emit(event)


async def list_tools(client: Client, cache_mode: str) -> None:
    names, cursor = [], None
    while True:
        page = await client.list_tools(cursor=cursor, cache_mode=cache_mode)
        names += [t.name for t in page.tools]
        cursor = page.next_cursor
        if cursor is None:
            break
    emit({"event": "tools", "names": names})


async def run(url: str, mode: str) -> None:
    browser = Browser()
    redirect_uri = await browser.start()
    metadata = OAuthClientMetadata(
        client_name=os.environ.get("CLIENT_NAME", "Python SDK OAuth test"),
        redirect_uris=[redirect_uri],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method="none",
    )
    auth = OAuthClientProvider(server_url=url, client_metadata=metadata, storage=MemoryStorage(),
                               redirect_handler=browser.redirect, callback_handler=browser.callback)
    hooks = {"response": [log_response]}
    try:
        async with httpx2.AsyncClient(auth=auth, timeout=httpx2.Timeout(60.0), event_hooks=hooks) as http:
            async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
                emit({"event": "connected", "protocol_version": str(client.protocol_version)})
                await list_tools(client, "use")
                emit({"event": "waiting"})
                await anyio.to_thread.run_sync(sys.stdin.readline)
                # Past the client's cache: the point is the request after the revoke.
                await list_tools(client, "refresh")
    finally:
        browser.server.close()


def main() -> int:
    try:
        anyio.run(run, sys.argv[1], os.environ.get("MCP_MODE", "auto"))
    except BaseException as error:  # an ExceptionGroup from the task groups, too
        traceback.print_exc()
        emit({"event": "error", "error": f"{type(error).__name__}: {error}"})
        return 2
    emit({"event": "done"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
