"""The driver of bench/scale.sh: grows the demo workspace through the MCP write path and measures
what its users feel at each size. Standard library only; wrk for the throughput figures.

    python3 bench/scale.py URL OWNER SERVER_PID WORK_DIR SIZES KEYS [BIN]
"""

import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

URL, OWNER, PID, WORK = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
SIZES = [int(s) for s in sys.argv[5].split(",")]
KEYS = int(sys.argv[6])
BIN = sys.argv[7] if len(sys.argv) > 7 else "./target/release/custory-mcp"
HOST = urllib.parse.urlsplit(URL)
RNG = random.Random(20261201)

# Realistic text: a large vocabulary with a Zipf-like spread, so most words are rare and a few
# are common; `handoff` and `latency` are put in about a sixth of the items each, `zephyrine` in
# a handful, and `quxabsent` in none.
SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "shi", "pra", "den", "gul", "mor", "sel",
             "tri", "bax", "fen", "qui", "zor", "lim", "dra", "cen", "pol", "wyn", "hest"]
VOCABULARY = sorted({"".join(RNG.choice(SYLLABLES) for _ in range(RNG.randint(2, 4)))
                     for _ in range(40_000)})
RNG.shuffle(VOCABULARY)
WEIGHTS = [1.0 / (rank + 10) for rank in range(len(VOCABULARY))]
CUMULATIVE = list(__import__("itertools").accumulate(WEIGHTS))
COMMON, SECOND, RARE, ABSENT = "handoff", "latency", "zephyrine", "quxabsent"
KINDS = ["touchpoint", "insight", "opportunity", "solution", "metric"]
OWNERS = ["Dana Whitfield", "Sam Okafor", "Priya Nair", "Maya Chen", "Leo Brandt"]


def words(n):
    return RNG.choices(VOCABULARY, cum_weights=CUMULATIVE, k=n)


def item_text(index):
    title = words(RNG.randint(3, 7))
    body = words(RNG.randint(25, 70))
    if RNG.random() < 0.16:
        body.insert(RNG.randrange(len(body)), COMMON)
    if RNG.random() < 0.16:
        body.insert(RNG.randrange(len(body)), SECOND)
    if index % 20_000 == 7:
        title.append(RARE)
    return " ".join(title).capitalize(), " ".join(body) + "."


class Client:
    """One keep-alive connection to the server."""

    def __init__(self, token=None):
        self.conn = http.client.HTTPConnection(HOST.hostname, HOST.port, timeout=120)
        self.token = token

    def request(self, method, path, body=None, headers=None, auth=None):
        all_headers = {"Content-Type": "application/json"}
        all_headers.update(headers or {})
        all_headers["Authorization"] = "Bearer " + (auth or self.token)
        data = json.dumps(body).encode() if body is not None else None
        try:
            self.conn.request(method, path, data, all_headers)
            response = self.conn.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # The server closes a connection idle for --header-timeout (10 s); reconnect, as
            # pooling HTTP clients do.
            self.conn.close()
            self.conn.request(method, path, data, all_headers)
            response = self.conn.getresponse()
        return response.status, response.read()

    def mcp(self, messages, version="2025-11-25"):
        status, data = self.request("POST", "/api/mcp", messages, {
            "Accept": "application/json, text/event-stream", "MCP-Protocol-Version": version})
        if status != 200:
            raise RuntimeError(f"MCP answered {status}: {data[:300]!r}")
        return json.loads(data), len(data)

    def tool(self, name, arguments):
        reply, size = self.mcp({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                "params": {"name": name, "arguments": arguments}})
        result = reply["result"]
        if result.get("isError"):
            raise RuntimeError(f"{name} {arguments}: {result['content'][0]['text']}")
        return result["structuredContent"], size


def create_key(name):
    client = Client(OWNER)
    status, data = client.request("POST", "/api/admin/workspaces/acme/mcp-keys",
                                  {"name": name, "expires": "30d"})
    assert status == 201, data
    return json.loads(data)["token"]


def reset_rss_peak():
    """Starts VmHWM again from the current RSS (Linux: clear_refs 5)."""
    with open(f"/proc/{PID}/clear_refs", "w") as refs:
        refs.write("5")


def rss_peak_mib():
    with open(f"/proc/{PID}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def timed(fn, n):
    """Runs `fn` n times; returns the latencies in ms."""
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def p(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def grow(client, steps, have, want):
    batch = []
    for index in range(have, want):
        title, body = item_text(index)
        arguments = {"step_id": RNG.choice(steps), "kind": KINDS[index % 5], "title": title,
                     "description": body, "owner": RNG.choice(OWNERS)}
        batch.append({"jsonrpc": "2.0", "id": len(batch) + 1, "method": "tools/call",
                      "params": {"name": "create_item", "arguments": arguments}})
        if len(batch) == 200 or index == want - 1:
            replies, _ = client.mcp(batch, version="2025-03-26")
            bad = [r for r in replies if r.get("result", {}).get("isError") or "error" in r]
            if bad:
                raise RuntimeError(f"create_item failed: {bad[0]}")
            batch = []


def wrk(lua, connections, seconds=4):
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", lua, URL + "/api/mcp"],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    raise RuntimeError(out)


def duration_ms(text):
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    raise ValueError(text)


def latency(token, body, seconds=3):
    """p50 and p99 in ms of one tool call, one connection, one request after another (wrk)."""
    path = f"{WORK}/latency.lua"
    write_lua(token, [body], path)
    out = subprocess.run(["wrk", "-t1", "-c1", f"-d{seconds}s", "--latency", "-s", path, URL + "/api/mcp"],
                         capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(out)
    found = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in ("50%", "99%"):
            found[parts[0]] = duration_ms(parts[1])
    return found["50%"], found["99%"]


def lua_mixed(token, item_ids, path, common=True):
    """wrk script: the read tools an agent uses, in turn (with or without a search for the
    common word, which ranks a sixth of the workspace)."""
    bodies = [
        {"name": "search", "arguments": {"query": COMMON if common else RARE}},
        {"name": "list_items", "arguments": {"kind": "insight"}},
        {"name": "get_item", "arguments": {"item_id": item_ids[0]}},
        {"name": "get_journey", "arguments": {"journey": "trial-to-paid"}},
        {"name": "search", "arguments": {"query": RARE}},
        {"name": "get_item", "arguments": {"item_id": item_ids[1]}},
        {"name": "list_items", "arguments": {}},
        {"name": "get_workspace", "arguments": {}},
    ]
    write_lua(token, bodies, path)


def write_lua(token, bodies, path):
    # A body is a tool call's params, or a whole message (resources, prompts, completion).
    lines = [json.dumps(b if "method" in b else {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": b})
             for b in bodies]
    quoted = ",\n".join("[[" + line + "]]" for line in lines)
    with open(path, "w") as out:
        out.write(f"""
local bodies = {{
{quoted}
}}
local n = 0
request = function()
  n = n + 1
  return wrk.format("POST", nil, {{
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json, text/event-stream",
    ["MCP-Protocol-Version"] = "2025-11-25",
    ["Authorization"] = "Bearer {token}",
  }}, bodies[(n % #bodies) + 1])
end
""")


def measure(client, token, other_token, size, rss_growing):
    row = {"size": size, "rss growing": rss_growing}
    reset_rss_peak()
    searches = {"rare": RARE, "common": COMMON, "absent": ABSENT, "two common": f"{COMMON} {SECOND}"}
    for label, query in searches.items():
        row[f"search {label}"] = latency(token, {"name": "search", "arguments": {"query": query}})
    row["list default"] = latency(token, {"name": "list_items", "arguments": {}})
    row["list filtered"] = latency(
        token, {"name": "list_items", "arguments": {"kind": "insight", "owner": "Priya Nair"}})
    row["get_journey"] = latency(token, {"name": "get_journey", "arguments": {"journey": "trial-to-paid"}})
    row["get_journey bytes"] = client.tool("get_journey", {"journey": "trial-to-paid"})[1]
    message = lambda method, params: {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
    row["resource"] = latency(token, message("resources/read", {"uri": "custory://journeys/trial-to-paid"}))
    row["prompt changes"] = latency(token, message("prompts/get", {
        "name": "summarise_changes", "arguments": {"journey": "trial-to-paid", "since": "30d"}}))
    row["complete"] = latency(token, message("completion/complete", {
        "ref": {"type": "ref/prompt", "name": "review_stage"}, "argument": {"name": "stage", "value": "a"},
        "context": {"arguments": {"journey": "trial-to-paid"}}}))
    items = client.tool("list_items", {"limit": 5})[0]["items"]
    item_ids = [i["id"] for i in items]
    lua_mixed(token, item_ids, f"{WORK}/mixed.lua")
    row["mixed 8"] = wrk(f"{WORK}/mixed.lua", 8)
    row["mixed 32"] = wrk(f"{WORK}/mixed.lua", 32)
    lua_mixed(token, item_ids, f"{WORK}/everyday.lua", common=False)
    row["everyday 32"] = wrk(f"{WORK}/everyday.lua", 32)
    # get_item (one client) while 8 other clients, with a key of their own, search for the
    # common word.
    write_lua(other_token, [{"name": "search", "arguments": {"query": COMMON}}], f"{WORK}/search.lua")
    load = subprocess.Popen(["wrk", "-t2", "-c8", "-d6s", "-s", f"{WORK}/search.lua", URL + "/api/mcp"],
                            stdout=subprocess.DEVNULL)
    time.sleep(0.5)  # the load is running; this is not waiting for readiness of anything of ours
    row["get_item under search"] = latency(token, {"name": "get_item", "arguments": {"item_id": item_ids[2]}}, 4)
    load.wait()
    row["rss"] = rss_peak_mib()
    return row


def keys_list(token_count):
    """Creates keys up to `token_count` (four admin connections), then times keys list."""
    done = [0]
    lock = threading.Lock()

    def worker(start, step):
        client = Client(OWNER)
        for i in range(start, token_count, step):
            status, data = client.request("POST", "/api/admin/workspaces/acme/mcp-keys",
                                          {"name": f"scale key {i}", "expires": "30d"})
            if status != 201:
                raise RuntimeError(data)
            with lock:
                done[0] += 1

    threads = [threading.Thread(target=worker, args=(i, 4)) for i in range(4)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    created_in = time.perf_counter() - started
    client = Client(OWNER)
    api = timed(lambda: client.request("GET", "/api/admin/workspaces/acme/mcp-keys"), 50)
    env = dict(os.environ, CUSTORY_OWNER_TOKEN=OWNER, COLUMNS="120")
    cli = timed(lambda: subprocess.run([BIN, "--server", URL, "keys", "list"], env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       check=True), 20)
    return {"created": done[0], "created_per_s": done[0] / created_in, "api": api, "cli": cli}


def fmt(pair):
    return f"{pair[0]:6.2f} / {pair[1]:6.2f}"


def main():
    token = create_key("scale driver")
    other_token = create_key("scale searchers")
    client = Client(token)
    journeys = client.tool("list_journeys", {})[0]["journeys"]
    steps = []
    for journey in journeys:
        tree = client.tool("get_journey", {"journey": journey["slug"]})[0]
        steps += [step["id"] for stage in tree["stages"] for step in stage["steps"]]
    have = client.tool("get_workspace", {})[0]["items"]["total"]
    rows = []
    for size in SIZES:
        started = time.perf_counter()
        reset_rss_peak()
        grow(client, steps, have, size)
        rss_growing = rss_peak_mib()
        took = time.perf_counter() - started
        print(f"grew the workspace from {have} to {size} items in {took:.1f} s "
              f"({(size - have) / max(took, 1e-9):,.0f} items/s)", file=sys.stderr)
        have = size
        rows.append(measure(client, token, other_token, size, rss_growing))
    keys = keys_list(KEYS) if KEYS else None

    print(f"custory-mcp scale, {os.cpu_count()} cores, database: {os.environ.get('BENCH_DATABASE', 'sqlite')}, "
          f"sizes {','.join(map(str, SIZES))}; times in ms (p50 / p99)")
    header = f"{'':34}" + "".join(f"{r['size']:>18,}" for r in rows)
    print(header + "   items")
    lines = [
        ("search, rare word", lambda r: fmt(r["search rare"])),
        ("search, absent word", lambda r: fmt(r["search absent"])),
        (f"search, common word (top 20)", lambda r: fmt(r["search common"])),
        ("search, two common words", lambda r: fmt(r["search two common"])),
        ("list_items, default", lambda r: fmt(r["list default"])),
        ("list_items, kind + owner", lambda r: fmt(r["list filtered"])),
        ("get_journey, largest journey", lambda r: fmt(r["get_journey"])),
        ("get_journey, bytes", lambda r: f"{r['get_journey bytes']:>15,}"),
        ("resources/read, largest journey", lambda r: fmt(r["resource"])),
        ("prompts/get summarise_changes 30d", lambda r: fmt(r["prompt changes"])),
        ("completion/complete, a stage", lambda r: fmt(r["complete"])),
        ("mixed reads, 8 connections (req/s)", lambda r: f"{r['mixed 8']:>15,.0f}"),
        ("mixed reads, 32 connections (req/s)", lambda r: f"{r['mixed 32']:>15,.0f}"),
        ("  the same, no common-word search", lambda r: f"{r['everyday 32']:>15,.0f}"),
        ("get_item while 8 clients search", lambda r: fmt(r["get_item under search"])),
        ("server peak RSS, reading (MiB)", lambda r: f"{r['rss']:>15.1f}"),
        ("server peak RSS, writing (MiB)", lambda r: f"{r['rss growing']:>15.1f}"),
    ]
    for label, cell in lines:
        print(f"{label:34}" + "".join(f"{cell(r):>18}" for r in rows))
    if len(rows) > 1:
        ratio = rows[-1]["mixed 32"] / rows[0]["mixed 32"]
        everyday = rows[-1]["everyday 32"] / rows[0]["everyday 32"]
        print(f"read throughput at {rows[-1]['size']:,} ÷ at {rows[0]['size']:,} (32 connections): "
              f"{ratio:.2f} with the common-word search, {everyday:.2f} without")
    if keys:
        print(f"keys: {keys['created']:,} created through the admin API ({keys['created_per_s']:,.0f}/s); "
              f"first page of GET …/mcp-keys p50 {p(keys['api'], .5):.1f} ms, p99 {p(keys['api'], .99):.1f} ms; "
              f"`custory-mcp keys list` p50 {p(keys['cli'], .5):.1f} ms, p99 {p(keys['cli'], .99):.1f} ms (whole process)")


if __name__ == "__main__":
    main()
