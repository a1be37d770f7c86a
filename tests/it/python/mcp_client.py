"""Drives the custory MCP endpoint with the official MCP Python SDK 2.x (`mcp` on PyPI).

Usage: MCP_TOKEN=cst_… [MCP_MODE=auto|legacy] python mcp_client.py URL STEPS_JSON

The steps are mcp_steps.py's. In the default "auto" mode the SDK tries the 2026-07-28 revision
first (`server/discover`) and falls back to `initialize`; "legacy" goes straight to the
handshake. Prints one JSON object on stdout: {"protocol_version": ..., "server_name": ...,
"results": [...]} or {"error": "..."} (exit 2).
"""

import json
import os
import sys

import httpx2
import mcp_types
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client

from mcp_steps import report, run_steps


class Sdk:
    """The step adapter: the SDK 2.x client's methods, by position."""

    def __init__(self, client):
        self.client = client

    def list_tools(self, cursor):
        return self.client.list_tools(cursor=cursor)

    def call_tool(self, name, args):
        return self.client.call_tool(name, args)

    def list_resources(self, cursor):
        return self.client.list_resources(cursor=cursor)

    def read_resource(self, uri):
        return self.client.read_resource(uri)

    def list_resource_templates(self):
        return self.client.list_resource_templates()

    def list_prompts(self, cursor):
        return self.client.list_prompts(cursor=cursor)

    def get_prompt(self, name, args):
        return self.client.get_prompt(name, args)

    def complete(self, ref, argument, context):
        return self.client.complete(ref, argument, context_arguments=context)

    @staticmethod
    def reference(ref):
        if ref["type"] == "ref/prompt":
            return mcp_types.PromptReference(type="ref/prompt", name=ref["name"])
        return mcp_types.ResourceTemplateReference(type="ref/resource", uri=ref["uri"])


async def run(url: str, token: str, mode: str, steps: list) -> dict:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0)) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            results = await run_steps(Sdk(client), steps)
            info = client.server_info
            return {
                "protocol_version": str(client.protocol_version),
                "server_name": getattr(info, "name", None),
                "results": results,
            }


def main() -> int:
    url, steps = sys.argv[1], json.loads(sys.argv[2])
    token, mode = os.environ["MCP_TOKEN"], os.environ.get("MCP_MODE", "auto")
    return report(lambda: run(url, token, mode, steps), MCPError)


if __name__ == "__main__":
    sys.exit(main())
