"""Drives the custory MCP endpoint with the official MCP Python SDK (`mcp` on PyPI).

Usage: python mcp_client.py URL TOKEN STEPS_JSON

STEPS_JSON is a list of steps: {"op": "list_tools"} or {"op": "call", "tool": NAME, "args": {...}}.
A string argument "$N.FIELD" is replaced by FIELD of step N's structured result (to use an id
an earlier call returned).
Connects in the SDK's default "auto" mode (it tries the 2026-07-28 `server/discover` first and
falls back to `initialize`), runs the steps, and prints one JSON object on stdout:
{"protocol_version": ..., "server_name": ..., "results": [...]} or {"error": "..."} (exit 2).
"""

import asyncio
import json
import sys

import httpx2
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client


async def run(url: str, token: str, steps: list) -> dict:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0)) as http:
        async with Client(streamable_http_client(url, http_client=http)) as client:
            results = []
            for step in steps:
                if step["op"] == "list_tools":
                    tools, cursor = [], None
                    while True:
                        page = await client.list_tools(cursor=cursor)
                        tools += page.tools
                        cursor = page.next_cursor
                        if cursor is None:
                            break
                    results.append({"tools": [t.name for t in tools]})
                elif step["op"] == "call":
                    args = resolve(step.get("args", {}), results)
                    res = await client.call_tool(step["tool"], args)
                    texts = [c.text for c in res.content if c.type == "text"]
                    results.append(
                        {"is_error": bool(res.is_error), "structured": res.structured_content, "text": texts}
                    )
                else:
                    raise ValueError(f"unknown op {step['op']}")
            info = client.server_info
            return {
                "protocol_version": str(client.protocol_version),
                "server_name": getattr(info, "name", None),
                "results": results,
            }


def resolve(value, results):
    if isinstance(value, dict):
        return {k: resolve(v, results) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, results) for v in value]
    if isinstance(value, str) and value.startswith("$") and "." in value:
        index, field = value[1:].split(".", 1)
        return results[int(index)]["structured"][field]
    return value


def leaf(error: BaseException) -> BaseException:
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    return error


def main() -> int:
    url, token, steps = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    try:
        print(json.dumps(asyncio.run(run(url, token, steps))))
        return 0
    except BaseException as error:  # noqa: BLE001 - report every failure as data
        error = leaf(error)
        if isinstance(error, MCPError):
            text = f"MCPError {error.code}: {error.message}"
        else:
            text = f"{type(error).__name__}: {error}"
        print(json.dumps({"error": text}))
        return 2


if __name__ == "__main__":
    sys.exit(main())
