#!/usr/bin/env bash
# Soak test: many MCP clients on keep-alive connections for a bounded time while, at the same
# time, keys are created, rotated and revoked through the admin API. Checks invariants and exits
# non-zero when one fails:
#   - no 5xx response, no dropped or reset connection, no unexpected response
#     (every answer is 200 with a JSON-RPC result, or 401 for a key being revoked);
#   - revocation is immediate: for every revoked (or rotated-away) key, no request that started
#     after the revoke call returned succeeded; and no key was refused before its revoke began;
#   - memory is flat: server VmRSS at the end within +20% of the middle of the run;
#   - after a graceful stop (SIGTERM): exit 0, no panic logged, PRAGMA integrity_check = ok,
#     every created item, comment and key the server acknowledged is in the database, and every
#     revoked key is marked revoked.
#
#   bench/soak.sh [SECONDS=30] [CLIENTS=64]
#
# Starts a release server on a free port with a throwaway database. The load driver is Python
# (standard library only: threads and http.client); python3 is installed from Debian's packages
# when missing. Everything is bounded: the run stops after SECONDS (and after a request cap per
# client), each request times out after 10 s. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
clients="${2:-64}"
case "$seconds$clients" in *[!0-9]*)
  echo "usage: bench/soak.sh [SECONDS=30] [CLIENTS=64] (whole numbers)" >&2; exit 2 ;;
esac
if [ "$seconds" -lt 4 ] || [ "$seconds" -gt 3600 ] || [ "$clients" -lt 1 ] || [ "$clients" -gt 512 ]; then
  echo "SECONDS must be 4..3600 and CLIENTS 1..512" >&2; exit 2
fi

if ! command -v python3 >/dev/null; then
  echo "installing python3 (Debian package)..." >&2
  apt-get update -qq >/dev/null && apt-get install -y -qq python3 >/dev/null
fi
cargo build --release --quiet

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null; fi
  rm -rf "$work"
}
trap cleanup EXIT
export CUSTORY_CONFIG_DIR="$work/config" CUSTORY_CREDENTIAL_STORE=file

cat >"$work/driver.py" <<'PY'
"""The soak driver.

`load` runs MCP clients and key churn against a running server, split over one shard process per
core: Python threads share one interpreter lock, so separate processes keep the driver from
being the bottleneck. Each shard has its own keys, its own client threads and its own admin
thread creating, rotating and revoking those keys. Times are time.monotonic (CLOCK_MONOTONIC,
one clock for all processes). `verify` checks the database after the server has stopped.
"""
import http.client
import json
import multiprocessing
import os
import random
import sqlite3
import sys
import threading
import time
from urllib.parse import urlparse

REQUEST_TIMEOUT = 10.0      # seconds, every request
MAX_REQUESTS_PER_CLIENT = 1_000_000
MAX_ADMIN_OPS = 100_000     # per shard
ADMIN_PAUSE = 0.02          # seconds between two key operations of a shard
POOL_MIN, POOL_MAX = 4, 12  # active keys a shard's clients choose from
RSS_FLAT_LIMIT = 1.20       # end / middle
REFUSED = (401, 429)        # a refused key: 401, or 429 once the address failed too often
WORDS = ["onboarding", "pricing", "trial", "dashboard", "invite"]
KINDS = ["touchpoint", "insight", "opportunity", "solution", "metric"]
mono = time.monotonic


def connect(url):
    u = urlparse(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=REQUEST_TIMEOUT)


class Admin:
    """The admin API over one keep-alive connection. No retry: a failed call is reported."""

    def __init__(self, url, owner):
        self.url = url
        self.headers = {"Authorization": f"Bearer {owner}", "Content-Type": "application/json"}
        self.conn = None

    def call(self, method, path, body=None):
        if self.conn is None:
            self.conn = connect(self.url)
        try:
            data = json.dumps(body) if body is not None else None
            self.conn.request(method, "/api/admin/workspaces/acme" + path, body=data,
                              headers=self.headers)
            resp = self.conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = None
            raise
        if resp.will_close:
            self.conn.close()
            self.conn = None
        return resp.status, json.loads(raw) if raw else None


def mcp_once(url, token, name, args):
    conn = connect(url)
    conn.request("POST", "/api/mcp", body=json.dumps({
        "jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": name, "arguments": args}}), headers={
        "Content-Type": "application/json", "Accept": "application/json, text/event-stream",
        "Authorization": f"Bearer {token}"})
    resp = conn.getresponse()
    body = json.loads(resp.read())
    conn.close()
    assert resp.status == 200 and not body["result"]["isError"], body
    return body["result"]["structuredContent"]


class Shard:
    def __init__(self, index, url, owner, plan, n_clients, deadline):
        self.index, self.url, self.owner, self.plan = index, url, owner, plan
        self.n_clients, self.deadline = n_clients, deadline
        self.lock = threading.Lock()
        self.pool = {}               # key id -> token: active keys clients may pick
        self.created = []            # ids of keys whose create/rotate returned 201
        self.revoke_started = {}     # key id -> when its revoke/rotate call began
        self.revoke_returned = {}    # key id -> when that call's answer had been read
        self.admin_failures = []
        self.admin_drops = 0
        self.probes = []             # (key id, start, end, status): the revoker's own requests
        self.ops = {"create": 0, "rotate": 0, "revoke": 0, "list": 0}

    def pick(self, rng, avoid=None):
        with self.lock:
            choices = [k for k in self.pool.items() if k[0] != avoid] or list(self.pool.items())
        return rng.choice(choices) if choices else None

    def add_key(self, body):
        with self.lock:
            self.created.append(body["key"]["id"])
            self.pool[body["key"]["id"]] = body["token"]

    def admin_loop(self):
        rng = random.Random(1000 + self.index)
        admin = Admin(self.url, self.owner)
        probe = Probe(self.url)
        seq = 0
        for _ in range(MAX_ADMIN_OPS):
            if mono() >= self.deadline:
                break
            with self.lock:
                size = len(self.pool)
            action = "create" if size < POOL_MIN else rng.choices(
                ["create", "rotate", "revoke", "list"], [3, 3, 3, 1])[0]
            if action == "create" and size >= POOL_MAX:
                action = "revoke"
            try:
                if action == "create":
                    seq += 1
                    status, body = admin.call("POST", "/mcp-keys", {
                        "name": f"soak {self.index}-{seq}",
                        "expires": rng.choice(["30d", "90d", "never"])})
                    if status != 201:
                        self.admin_failures.append(f"create: HTTP {status} {body}")
                        continue
                    self.add_key(body)
                elif action in ("rotate", "revoke"):
                    with self.lock:
                        victim = rng.choice(list(self.pool))
                        # Out of the pool first, so no client picks it up anew; the clients
                        # holding it keep using it until they are refused.
                        old_token = self.pool.pop(victim)
                        self.revoke_started[victim] = mono()
                    status, body = admin.call("POST", f"/mcp-keys/{victim}/{action}")
                    returned = mono()
                    if status != (201 if action == "rotate" else 200):
                        self.admin_failures.append(f"{action}: HTTP {status} {body}")
                        continue
                    self.revoke_returned[victim] = returned
                    # The very next request with the old token, from the thread that revoked
                    # it, so it certainly starts after the revoke returned: must be refused.
                    start = mono()
                    status = probe.status(old_token)
                    self.probes.append((victim, start, mono(), status))
                    if action == "rotate":
                        self.add_key(body)
                        # The new token works at once.
                        status = probe.status(body["token"])
                        if status != 200:
                            self.admin_failures.append(f"rotated-in key: HTTP {status}")
                else:
                    status, body = admin.call("GET", "/mcp-keys?status=active")
                    if status != 200:
                        self.admin_failures.append(f"list: HTTP {status} {body}")
                        continue
                self.ops[action] += 1
            except (OSError, http.client.HTTPException, ValueError) as error:
                self.admin_failures.append(f"{action}: {type(error).__name__}: {error}")
                self.admin_drops += 1
            time.sleep(ADMIN_PAUSE)

    def run(self):
        admin = Admin(self.url, self.owner)
        for i in range(POOL_MAX // 2):
            status, body = admin.call("POST", "/mcp-keys", {
                "name": f"soak {self.index} initial {i}", "expires": "never"})
            assert status == 201, (status, body)
            self.add_key(body)
        clients = [Client(self.index * 1000 + i, self) for i in range(self.n_clients)]
        threads = [threading.Thread(target=c.run, daemon=True) for c in clients]
        threads.append(threading.Thread(target=self.admin_loop, daemon=True))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=max(0, self.deadline - mono()) + REQUEST_TIMEOUT + 5)
        return self.summary(clients, sum(t.is_alive() for t in threads))

    def summary(self, clients, hung):
        records = [r for c in clients for r in c.records]
        client_requests = len(records)
        records += self.probes
        by_method = {}
        for c in clients:
            for method, n in c.by_method.items():
                by_method[method] = by_method.get(method, 0) + n
        # Revocation: every request that started after its key's revoke call returned must be
        # refused; no refusal may come back before the revoke call began.
        after_revoke, keys_hit_after, succeeded_after, early_refusals = 0, set(), [], []
        for key_id, start, end, status in records:
            returned = self.revoke_returned.get(key_id)
            if returned is not None and start > returned:
                after_revoke += 1
                keys_hit_after.add(key_id)
                if status not in REFUSED:
                    succeeded_after.append(f"{key_id}: HTTP {status}, started "
                                           f"{(start - returned) * 1e3:.1f} ms after the revoke returned")
            if status in REFUSED:
                began = self.revoke_started.get(key_id)
                if began is None or end < began:
                    early_refusals.append(f"{key_id}: HTTP {status} with no revoke under way")
        return {
            "requests": client_requests,
            "probes": len(self.probes),
            "last_end": max((r[2] for r in records), default=0.0),
            "by_method": by_method,
            "latencies": [end - start for _, start, end, _ in records],
            "ends": [end for _, _, end, _ in records],
            "connections": sum(c.connections for c in clients),
            "fivexx": [u for c in clients for u in c.fivexx],
            "drops": [d for c in clients for d in c.drops],
            "unexpected": [u for c in clients for u in c.unexpected],
            "refused": {s: sum(1 for r in records if r[3] == s) for s in REFUSED},
            "hung": hung,
            "ops": self.ops,
            "admin_failures": self.admin_failures,
            "admin_drops": self.admin_drops,
            "revoked": sorted(self.revoke_returned),
            "keys_hit_after": len(keys_hit_after),
            "after_revoke": after_revoke,
            "succeeded_after": succeeded_after,
            "early_refusals": early_refusals,
            "keys": self.created,
            "items": [i for c in clients for i in c.items],
            "comments": [i for c in clients for i in c.comments],
        }


class Probe:
    """The revoker's own MCP connection: tools/list with a given token."""

    def __init__(self, url):
        self.url = url
        self.conn = None
        self.after_refusal = False

    def status(self, token):
        if self.conn is None:
            self.conn, self.after_refusal = connect(self.url), False
        try:
            self.conn.request("POST", "/api/mcp", body='{"jsonrpc":"2.0","id":1,"method":"tools/list"}',
                              headers={"Content-Type": "application/json",
                                       "Accept": "application/json, text/event-stream",
                                       "Authorization": f"Bearer {token}"})
            resp = self.conn.getresponse()
            resp.read()
        except (OSError, http.client.HTTPException) as error:
            self.conn.close()
            self.conn = None
            raise ConnectionError(f"probe: {type(error).__name__}: {error}"
                                  + (" (after a refusal on it)" if self.after_refusal else ""))
        if resp.will_close:
            self.conn.close()
            self.conn = None
        self.after_refusal = resp.status in REFUSED
        return resp.status


class Client:
    """One MCP client: one keep-alive connection, a current key, a mix of calls."""

    def __init__(self, cid, shard):
        self.cid, self.shard, self.plan = cid, shard, shard.plan
        self.rng = random.Random(cid)
        self.records = []        # (key id, start, end, status)
        self.by_method = {}
        self.fivexx = []
        self.drops = []          # what failed, and whether the previous answer was a refusal
        self.unexpected = []
        self.connections = 0
        self.items = []
        self.comments = []

    def message(self, rid):
        p, rng = self.plan, self.rng
        r = rng.random()
        if r < 0.20:
            return "tools/list", {"jsonrpc": "2.0", "id": rid, "method": "tools/list"}
        if r < 0.25:
            return "initialize", {"jsonrpc": "2.0", "id": rid, "method": "initialize", "params": {
                "protocolVersion": "2025-11-25", "capabilities": {},
                "clientInfo": {"name": f"soak-{self.cid}", "version": "1"}}}
        if r < 0.50:
            name, args = "search", {"query": rng.choice(WORDS)}
        elif r < 0.65:
            name, args = "get_journey", {"journey": p["read_journey"]}
        elif r < 0.90:
            name, args = "list_items", {"kind": rng.choice(KINDS), "limit": 20}
        elif r < 0.95:
            name, args = "create_item", {
                "step_id": rng.choice(p["write_steps"]), "kind": "insight",
                "title": f"soak insight {self.cid}-{rid}", "description": "written by bench/soak.sh"}
        else:
            name, args = "add_comment", {"item_id": rng.choice(p["write_items"]),
                                         "body": f"soak comment {self.cid}-{rid}"}
        return name, {"jsonrpc": "2.0", "id": rid, "method": "tools/call",
                      "params": {"name": name, "arguments": args}}

    def run(self):
        conn, after_refusal = None, False
        key = self.shard.pick(self.rng)
        switch_in = self.rng.randint(20, 60)
        for n in range(1, MAX_REQUESTS_PER_CLIENT + 1):
            if mono() >= self.shard.deadline:
                break
            if key is None:
                time.sleep(0.01)
                key = self.shard.pick(self.rng)
                continue
            if conn is None:
                conn, after_refusal = connect(self.shard.url), False
                self.connections += 1
            method, payload = self.message(n)
            headers = {
                "Content-Type": "application/json",
                "Accept": "application/json, text/event-stream",
                "MCP-Protocol-Version": "2025-11-25",
                "Authorization": f"Bearer {key[1]}",
            }
            data = json.dumps(payload)
            start = mono()
            try:
                conn.request("POST", "/api/mcp", body=data, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
            except (OSError, http.client.HTTPException) as error:
                self.drops.append((f"{method}: {type(error).__name__}: {error}", after_refusal))
                conn.close()
                conn = None
                continue
            end = mono()
            status = resp.status
            # A key revoked while its request was running: the server checks the key again
            # before each tool call (JSON-RPC -32001) and under the write lock (a tool error).
            # Counted as the refusal it is (401), so it too must come after a revoke began.
            if status == 200 and (b'"code":-32001' in raw or b"Not run: this MCP key" in raw):
                status = 401
            self.records.append((key[0], start, end, status))
            self.by_method[method] = self.by_method.get(method, 0) + 1
            if resp.will_close:
                # Announced with `Connection: close`: a clean reconnect, not a drop.
                conn.close()
                conn = None
            after_refusal = status in REFUSED
            if status in REFUSED:
                key = self.shard.pick(self.rng, avoid=key[0])
                continue
            if status >= 500:
                self.fivexx.append(f"{method}: HTTP {status} {raw[:200]!r}")
                continue
            problem = self.check(method, status, raw)
            if problem:
                self.unexpected.append(problem)
            switch_in -= 1
            if switch_in <= 0:
                key = self.shard.pick(self.rng) or key
                switch_in = self.rng.randint(20, 60)
        if conn is not None:
            conn.close()

    def check(self, method, status, raw):
        if status != 200:
            return f"{method}: HTTP {status} {raw[:200]!r}"
        try:
            message = json.loads(raw)
        except ValueError:
            return f"{method}: not JSON {raw[:200]!r}"
        result = message.get("result")
        if result is None:
            return f"{method}: JSON-RPC error {message.get('error')}"
        if method in ("tools/list", "initialize"):
            return None
        if result.get("isError"):
            return f"{method}: tool error {result.get('content')}"
        structured = result.get("structuredContent") or {}
        if method == "create_item":
            item_id = (structured.get("item") or structured).get("id")
            if not item_id:
                return f"create_item: no id in {str(structured)[:200]}"
            self.items.append(item_id)
        elif method == "add_comment":
            comment_id = (structured.get("comment") or {}).get("id")
            if not comment_id:
                return f"add_comment: no comment id in {str(structured)[:200]}"
            self.comments.append(comment_id)
        return None


def run_shard(queue, *args):
    try:
        queue.put(Shard(*args).run())
    except BaseException as error:  # reported by the parent as a failure
        queue.put({"crashed": f"{type(error).__name__}: {error}"})


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def percentile(sorted_values, q):
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def load(url, owner, pid, seconds, n_clients, out_path):
    # The plan: the demo workspace's journeys, steps and items, read once with a setup key.
    status, body = Admin(url, owner).call("POST", "/mcp-keys", {"name": "soak setup", "expires": "30d"})
    assert status == 201, (status, body)
    setup_key, setup = body["key"]["id"], body["token"]
    # Writes go to one journey and get_journey reads another, so the answers read stay the same
    # size while the database grows: memory is then measured at a steady state, not following
    # an answer that grows with every item written (get_journey returns the whole tree).
    journeys = [j["slug"] for j in mcp_once(url, setup, "list_journeys", {})["journeys"]]
    assert len(journeys) >= 2, journeys
    write = mcp_once(url, setup, "get_journey", {"journey": journeys[1]})
    write_steps = [s["id"] for stage in write["stages"] for s in stage["steps"]]
    write_items = [i["id"] for i in mcp_once(url, setup, "list_items", {
        "journey": journeys[1], "limit": 200})["items"]]
    plan = {"read_journey": journeys[0], "write_steps": write_steps, "write_items": write_items}

    n_shards = max(1, min(os.cpu_count() or 1, n_clients))
    per_shard = [n_clients // n_shards + (i < n_clients % n_shards) for i in range(n_shards)]
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    rss = {"start": rss_kib(pid)}
    samples = []
    t0 = mono()
    deadline = t0 + seconds
    shards = [ctx.Process(target=run_shard, args=(queue, i, url, owner, plan, n, deadline))
              for i, n in enumerate(per_shard)]
    for shard in shards:
        shard.start()
    while mono() < deadline:
        time.sleep(0.25)
        samples.append((mono() - t0, rss_kib(pid)))
        if "middle" not in rss and samples[-1][0] >= seconds / 2:
            rss["middle"] = samples[-1][1]
    rss["end"] = rss_kib(pid)
    results = []
    for _ in shards:
        try:
            results.append(queue.get(timeout=REQUEST_TIMEOUT + 30))
        except Exception as error:  # queue.Empty: a shard hung
            results.append({"crashed": f"no result from a shard ({type(error).__name__})"})
    for shard in shards:
        shard.join(timeout=5)
        if shard.is_alive():
            shard.kill()

    failures = []
    crashed = [r["crashed"] for r in results if "crashed" in r]
    results = [r for r in results if "crashed" not in r]
    total = lambda field: sum(len(r[field]) if isinstance(r[field], list) else r[field]
                              for r in results)
    requests = total("requests")
    elapsed = max([r["last_end"] for r in results] + [t0 + 1e-9]) - t0
    by_method = {}
    for r in results:
        for method, n in r["by_method"].items():
            by_method[method] = by_method.get(method, 0) + n
    latencies = sorted(x for r in results for x in r["latencies"])
    listed = lambda field: [x for r in results for x in r[field]]
    drops = listed("drops")
    drops_after_refusal = [d for d, after in drops if after]
    other_drops = [d for d, after in drops if not after]
    admin_drops = total("admin_drops")
    ops = {k: sum(r["ops"][k] for r in results) for k in ("create", "rotate", "revoke", "list")}
    refused = {s: sum(r["refused"][s] for r in results) for s in REFUSED}

    def row(label, value, rule="", ok=None, note=""):
        verdict = "" if ok is None else ("ok" if ok else "FAIL")
        if ok is False:
            failures.append(label)
        print(f"  {label:<38} {value:>9}   {rule:<12} {verdict:<4} {note}".rstrip())

    print(f"load: {elapsed:.1f} s, {n_clients} MCP clients on keep-alive connections in "
          f"{n_shards} driver processes, plus {n_shards} admin threads churning keys")
    row("requests", requests, note=f"{requests / elapsed:,.0f}/s; latency p50 "
        f"{percentile(latencies, .5) * 1e3:.1f} ms, p99 {percentile(latencies, .99) * 1e3:.1f} ms, "
        f"max {percentile(latencies, 1) * 1e3:.0f} ms")
    print("    " + ", ".join(f"{m} {n}" for m, n in sorted(by_method.items())))
    row("connections opened", total("connections"), note=f"{n_clients} at the start")
    row("driver processes that crashed", len(crashed), "must be 0", not crashed)
    row("5xx responses", total("fivexx"), "must be 0", total("fivexx") == 0)
    row("dropped/reset connections", len(drops) + admin_drops, "must be 0",
        not drops and not admin_drops)
    if drops:
        row("  ...on the request after a refusal", len(drops_after_refusal))
        row("  ...elsewhere", len(other_drops) + admin_drops)
    row("unexpected responses", total("unexpected"), "must be 0", total("unexpected") == 0)
    row("failed admin calls", total("admin_failures"), "must be 0", total("admin_failures") == 0)
    row("threads still running at the end", total("hung"), "must be 0", total("hung") == 0)
    examples = (crashed + listed("fivexx") + drops_after_refusal[:2] + other_drops
                + listed("unexpected") + listed("admin_failures"))
    for example in examples[:6]:
        print(f"    e.g. {example}")
    print(f"keys, through the admin API during the load: {ops['create']} created, {ops['rotate']} "
          f"rotated, {ops['revoke']} revoked, {ops['list']} listed")
    revoked = len(listed("revoked"))
    row("keys revoked (revoke or rotate)", revoked, note=f"{total('keys_hit_after')} of them "
        "used after their revoke returned (each at least by its revoker)")
    row("requests started after their revoke", total("after_revoke"), "must be > 0",
        total("after_revoke") > 0 and total("keys_hit_after") == revoked,
        f"{total('probes')} by the revoker right after the call, the rest by clients")
    row("  ...that were not refused", total("succeeded_after"), "must be 0",
        total("succeeded_after") == 0)
    row("refusals", sum(refused.values()), note=f"401: {refused[401]}, 429: {refused[429]}")
    row("  ...of a key not being revoked", total("early_refusals"), "must be 0",
        total("early_refusals") == 0)
    for example in (listed("succeeded_after") + listed("early_refusals"))[:5]:
        print(f"    e.g. {example}")
    mib = lambda kib: f"{kib / 1024:.1f} MiB"
    # Throughput and memory over the run, in fifths, to show a trend (or its absence).
    fifth = seconds / 5
    ends = listed("ends")
    rates = [sum(1 for e in ends if i * fifth <= e - t0 < (i + 1) * fifth) / fifth for i in range(5)]
    rss_by_fifth = [max([s[1] for s in samples if i * fifth <= s[0] < (i + 1) * fifth] or [0])
                    for i in range(5)]
    print("  requests/s by fifth of the run    " + "  ".join(f"{r:,.0f}" for r in rates))
    peak = max([rss["start"]] + [s[1] for s in samples])
    ratio = rss["end"] / rss["middle"]
    print(f"memory (server VmRSS): start {mib(rss['start'])}, middle {mib(rss['middle'])}, "
          f"end {mib(rss['end'])}, peak {mib(peak)}")
    print("  peak by fifth of the run          " + "  ".join(mib(r) for r in rss_by_fifth))
    row("end / middle", f"{ratio:.2f}", f"must be <= {RSS_FLAT_LIMIT:.2f}", ratio <= RSS_FLAT_LIMIT)
    with open(out_path, "w") as out:
        json.dump({"items": listed("items"), "comments": listed("comments"),
                   "keys": [setup_key] + listed("keys"), "revoked": listed("revoked")}, out)
    return 1 if failures else 0


def verify(db, result_path):
    with open(result_path) as f:
        result = json.load(f)
    failures = []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]

    def present(table, ids, extra=""):
        found = 0
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            marks = ",".join("?" * len(chunk))
            found += conn.execute(f"SELECT count(*) FROM {table} WHERE id IN ({marks}){extra}",
                                  chunk).fetchone()[0]
        return found

    checks = [
        ("PRAGMA integrity_check", integrity, integrity == "ok"),
    ]
    for label, table, ids, extra in [
        ("created items present", "items", result["items"], ""),
        ("added comments present", "comments", result["comments"], ""),
        ("created keys present", "mcp_keys", result["keys"], ""),
        ("revoked keys marked revoked", "mcp_keys", result["revoked"], " AND revoked_at IS NOT NULL"),
    ]:
        found = present(table, ids, extra)
        checks.append((label, f"{found}/{len(ids)}", found == len(ids) and len(ids) > 0))
    conn.close()
    print("after the graceful stop, the database opened read-only:")
    for label, figures, ok in checks:
        if not ok:
            failures.append(label)
        print(f"  {label:<38} {figures:>9}   {'':<12} {'ok' if ok else 'FAIL'}")
    return 1 if failures else 0


if __name__ == "__main__":
    if sys.argv[1] == "load":
        url, owner, pid, seconds, n_clients, out_path = sys.argv[2:8]
        sys.exit(load(url, owner, int(pid), int(seconds), int(n_clients), out_path))
    sys.exit(verify(sys.argv[2], sys.argv[3]))
PY

# The server prints one JSON line once its listener is bound.
mkfifo "$work/announce"
./target/release/custory-mcp serve --json --listen 127.0.0.1:0 --db "$work/soak.db" \
  >"$work/announce" 2>"$work/server.log" &
server_pid=$!
read -r announcement <"$work/announce"
field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
url="$(field "$announcement" url)"
owner="$(field "$announcement" owner_credential)"

echo "custory-mcp $(./target/release/custory-mcp --version | cut -d' ' -f2), $(nproc) cores," \
  "$(date -u +%Y-%m-%dT%H:%MZ)"
failed=0
python3 "$work/driver.py" load "$url" "$owner" "$server_pid" "$seconds" "$clients" \
  "$work/result.json" || failed=1

# A graceful stop: SIGTERM, exit 0, nothing panicked.
kill -TERM "$server_pid"
stop_status=0
wait "$server_pid" || stop_status=$?
server_pid=""
panics="$(grep -c -i 'panicked' "$work/server.log" || true)"
echo "server stop: exit status $stop_status (must be 0), panics in the log: $panics (must be 0)"
if [ "$stop_status" -ne 0 ] || [ "$panics" -ne 0 ]; then
  failed=1
  tail -n 20 "$work/server.log" >&2
fi
if [ -f "$work/result.json" ]; then
  python3 "$work/driver.py" verify "$work/soak.db" "$work/result.json" || failed=1
else
  failed=1
fi
if [ "$failed" -eq 0 ]; then echo "verdict: PASS"; else echo "verdict: FAIL"; fi
echo "command: bench/soak.sh $seconds $clients"
exit "$failed"
