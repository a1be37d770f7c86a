"""Checks every tool's input schema (a `tools/list` result's `tools`, as JSON on stdin) against
the strict modes of three model families, with their own SDKs where they have the code:

- OpenAI: openai-agents' `ensure_strict_json_schema`, called as its MCP adapter calls it (a
  schema it refuses is sent non-strict), then the documented rules of OpenAI's strict mode on
  what it made (only the supported keywords and string formats, every property required,
  `additionalProperties: false` on every object, at most 10 levels and 5000 properties).
- Gemini: google-genai's `JSONSchema` (its pydantic model forbids keywords it does not know)
  and `Schema.from_json_schema` for the Gemini API with unsupported fields refused, then the
  documented formats (integer: int32/int64, number: float/double, string: enum/date-time).
- Anthropic: the anthropic SDK's `transform_schema` (what strict tool use sends), which must
  keep every keyword but the numeric bounds it moves into descriptions.

Prints one JSON line: {"tools": N, "problems": ["tool: family: what", ...]}.
"""

import copy
import json
import logging
import sys

logging.disable(logging.CRITICAL)

from agents.strict_schema import ensure_strict_json_schema  # noqa: E402
from anthropic.lib._parse._transform import transform_schema  # noqa: E402
from google.genai import types  # noqa: E402

OPENAI_KEYWORDS = {
    "type", "properties", "required", "additionalProperties", "items", "anyOf", "enum",
    "const", "description", "title", "$ref", "$defs", "pattern", "format", "minimum",
    "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minItems", "maxItems",
}
OPENAI_FORMATS = {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6",
                  "uuid"}
GEMINI_FORMATS = {"integer": {"int32", "int64"}, "number": {"float", "double"},
                  "string": {"enum", "date-time"}}
# What Anthropic's transform may move into a description (it has no numeric constraints).
ANTHROPIC_MOVED = {"minimum", "maximum"}


def subschemas(schema):
    """(the keyword path, subschema) of every schema under `schema`, `schema` included."""
    out = [((), schema)]
    for key, value in schema.items():
        if key in ("properties", "$defs") and isinstance(value, dict):
            for name, sub in value.items():
                out += [((key, name) + p, s) for p, s in subschemas(sub)]
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out += [((key,) + p, s) for p, s in subschemas(value)]
        elif key in ("anyOf", "oneOf", "allOf") and isinstance(value, list):
            for i, sub in enumerate(value):
                out += [((key, str(i)) + p, s) for p, s in subschemas(sub)]
    return out


def depth(schema):
    return max(len([k for k in p if k == "properties"]) for p, _ in subschemas(schema)) + 1


def openai(schema):
    problems = [f"{'/'.join(p) or 'root'}: an object schema without `required`"
                for p, sub in subschemas(schema)
                if sub.get("type") == "object" and "required" not in sub]
    try:
        strict = ensure_strict_json_schema(copy.deepcopy(schema),
                                           _reject_open_objects=schema != {})
    except Exception as e:  # what openai-agents catches to fall back to non-strict
        return problems + [f"ensure_strict_json_schema refused it (sent non-strict): {e}"]
    for path, sub in subschemas(strict):
        at = "/".join(path) or "root"
        for key in sub:
            if key not in OPENAI_KEYWORDS:
                problems.append(f"{at}: keyword {key!r} is not supported")
        if "format" in sub and sub["format"] not in OPENAI_FORMATS:
            problems.append(f"{at}: format {sub['format']!r} is not supported")
        if sub.get("type") == "object":
            if sub.get("additionalProperties") is not False:
                problems.append(f"{at}: an object without additionalProperties: false")
            if sorted(sub.get("required", [])) != sorted(sub.get("properties", {})):
                problems.append(f"{at}: not every property is required")
    if "anyOf" in strict or strict.get("type") != "object":
        problems.append("the root is not a plain object")
    if depth(strict) > 10:
        problems.append("more than 10 levels of nesting")
    if sum(len(s.get("properties", {})) for _, s in subschemas(strict)) > 5000:
        problems.append("more than 5000 properties")
    return problems


def gemini(schema):
    problems = []
    try:
        parsed = types.JSONSchema.model_validate(copy.deepcopy(schema))
        types.Schema.from_json_schema(json_schema=parsed, api_option="GEMINI_API",
                                      raise_error_on_unsupported_field=True)
    except Exception as e:
        problems.append(f"google-genai refused it: {e}".splitlines()[0])
    for path, sub in subschemas(schema):
        t = sub.get("type")
        if "format" in sub and sub["format"] not in GEMINI_FORMATS.get(t, set()):
            problems.append(f"{'/'.join(path) or 'root'}: format {sub['format']!r} on {t}")
        if isinstance(t, list):
            problems.append(f"{'/'.join(path) or 'root'}: a type array")
    return problems


def anthropic(schema):
    try:
        sent = transform_schema(copy.deepcopy(schema))
    except Exception as e:
        return [f"transform_schema refused it: {e}"]
    problems = []
    before = dict(subschemas(schema))
    for path, sub in subschemas(sent):
        at = "/".join(path) or "root"
        original = before.get(path)
        if original is None:
            problems.append(f"{at}: made up by the transform")
            continue
        lost = set(original) - set(sub) - ANTHROPIC_MOVED
        if "enum" in sub:
            lost.discard("type")  # the values say it
        if lost:
            problems.append(f"{at}: the strict transform drops {sorted(lost)}")
    return problems


def main():
    tools = json.load(sys.stdin)
    problems = []
    for tool in tools:
        schema = tool["inputSchema"]
        for family, check in (("openai", openai), ("gemini", gemini), ("anthropic", anthropic)):
            problems += [f"{tool['name']}: {family}: {p}" for p in check(schema)]
    print(json.dumps({"tools": len(tools), "problems": problems}))


main()
