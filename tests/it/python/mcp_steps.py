"""The steps both Python SDK drivers run (mcp_client.py for the SDK 2.x, mcp_client_v1.py for
1.x), written once against a small adapter so that each driver holds only its SDK's API.

A step is {"op": ...}:
  list_tools | call (tool, args) | list_resources | read_resource (uri) | list_templates |
  list_prompts | get_prompt (name, args) | complete (ref, argument, value, context).
A string argument "$N.FIELD" is replaced by FIELD of step N's structured result (to use an id
an earlier call returned). Lists are followed through every page.
"""

import json
import sys


async def run_steps(sdk, steps: list) -> list:
    results = []
    for step in steps:
        op = step["op"]
        if op == "list_tools":
            tools = await all_pages(sdk.list_tools, "tools")
            results.append({"tools": [t.name for t in tools]})
        elif op == "call":
            res = await sdk.call_tool(step["tool"], resolve(step.get("args", {}), results))
            texts = [c.text for c in res.content if c.type == "text"]
            results.append({"is_error": bool(attr(res, "is_error", "isError")),
                            "structured": attr(res, "structured_content", "structuredContent"),
                            "text": texts})
        elif op == "list_resources":
            pages = []
            resources = await all_pages(sdk.list_resources, "resources", pages)
            results.append({"pages": len(pages), "resources": [
                {"uri": str(r.uri), "name": r.name, "title": r.title,
                 "mime_type": attr(r, "mime_type", "mimeType")} for r in resources]})
        elif op == "read_resource":
            res = await sdk.read_resource(resolve(step["uri"], results))
            results.append({"contents": [{"uri": str(c.uri), "mime_type": attr(c, "mime_type", "mimeType"),
                                          "text": c.text} for c in res.contents]})
        elif op == "list_templates":
            res = await sdk.list_resource_templates()
            templates = attr(res, "resource_templates", "resourceTemplates")
            results.append({"templates": [attr(t, "uri_template", "uriTemplate") for t in templates]})
        elif op == "list_prompts":
            prompts = await all_pages(sdk.list_prompts, "prompts")
            results.append({"prompts": [{"name": p.name, "arguments": [a.name for a in (p.arguments or [])]}
                                        for p in prompts]})
        elif op == "get_prompt":
            res = await sdk.get_prompt(step["name"], step.get("args", {}))
            results.append({"description": res.description,
                            "messages": [{"role": m.role, "text": m.content.text} for m in res.messages]})
        elif op == "complete":
            ref = sdk.reference(step["ref"])
            res = await sdk.complete(ref, {"name": step["argument"], "value": step["value"]},
                                     step.get("context"))
            completion = res.completion
            results.append({"values": completion.values,
                            "has_more": bool(attr(completion, "has_more", "hasMore"))})
        else:
            raise ValueError(f"unknown op {op}")
    return results


async def all_pages(fetch, member: str, pages: list | None = None) -> list:
    found, cursor = [], None
    while True:
        page = await fetch(cursor)
        if pages is not None:
            pages.append(page)
        found += getattr(page, member)
        cursor = attr(page, "next_cursor", "nextCursor")
        if cursor is None:
            return found


def attr(thing, *names):
    """The first of `names` that `thing` has: the SDK 2.x names fields in snake case, 1.x in
    camel case."""
    for name in names:
        if hasattr(thing, name):
            return getattr(thing, name)
    raise AttributeError(f"{type(thing).__name__} has none of {names}")


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


def report(run, mcp_error_type) -> int:
    """Runs `run()` and prints its JSON report, or {"error": ...} (exit 2)."""
    import asyncio

    try:
        print(json.dumps(asyncio.run(run())))
        return 0
    except BaseException as error:  # noqa: BLE001 - report every failure as data
        error = leaf(error)
        if isinstance(error, mcp_error_type):
            code = getattr(error, "code", None) or getattr(getattr(error, "error", None), "code", None)
            message = getattr(error, "message", None) or str(error)
            text = f"MCPError {code}: {message}"
        else:
            text = f"{type(error).__name__}: {error}"
        print(json.dumps({"error": text}))
        return 2
