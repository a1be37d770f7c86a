"""Drives the custory MCP endpoint with the official MCP Python SDK 1.x (`mcp<2` on PyPI),
which speaks the handshake era only.

Usage: MCP_TOKEN=cst_… python mcp_client_v1.py URL STEPS_JSON

The steps are mcp_steps.py's; the report is mcp_client.py's.
"""

import json
import os
import sys

from mcp import ClientSession, types
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.exceptions import McpError
from pydantic import AnyUrl

from mcp_steps import report, run_steps


class Sdk:
    """The step adapter: the SDK 1.x session's methods, by position."""

    def __init__(self, session):
        self.session = session

    def list_tools(self, cursor):
        return self.session.list_tools(cursor=cursor)

    def call_tool(self, name, args):
        return self.session.call_tool(name, args)

    def list_resources(self, cursor):
        return self.session.list_resources(cursor=cursor)

    def read_resource(self, uri):
        return self.session.read_resource(AnyUrl(uri))

    def list_resource_templates(self):
        return self.session.list_resource_templates()

    def list_prompts(self, cursor):
        return self.session.list_prompts(cursor=cursor)

    def get_prompt(self, name, args):
        return self.session.get_prompt(name, args)

    def complete(self, ref, argument, context):
        return self.session.complete(ref, argument, context_arguments=context)

    @staticmethod
    def reference(ref):
        if ref["type"] == "ref/prompt":
            return types.PromptReference(type="ref/prompt", name=ref["name"])
        return types.ResourceTemplateReference(type="ref/resource", uri=ref["uri"])


async def run(url: str, token: str, steps: list) -> dict:
    headers = {"Authorization": f"Bearer {token}"}
    async with streamablehttp_client(url, headers=headers) as (read, write, _):
        async with ClientSession(read, write) as session:
            initialized = await session.initialize()
            results = await run_steps(Sdk(session), steps)
            return {
                "protocol_version": str(initialized.protocolVersion),
                "server_name": initialized.serverInfo.name,
                "results": results,
            }


def main() -> int:
    url, steps = sys.argv[1], json.loads(sys.argv[2])
    return report(lambda: run(url, os.environ["MCP_TOKEN"], steps), McpError)


if __name__ == "__main__":
    sys.exit(main())
