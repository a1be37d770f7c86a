"""The attacks of issue 15 replayed against a release server, each with what everyone else felt.

Usage (from bench/abuse.sh): abuse.py URL OWNER PID
ABUSE_ONLY=11,12 runs only those attacks (8, the SIGTERM, always runs last);
BENCH_IMPORT_ITEMS (default 1,000,000) sizes the import of 11, BENCH_LOAD_SECONDS (20) its load.

Attackers connect from 127.0.0.2-127.0.0.4, so the per-address connection cap applies to them
and not to the probes (127.0.0.1): a /healthz prober, and a "victim" key in another workspace
calling get_workspace one request after another. For each attack: what the attacker got, the
server's RSS (and its growth), and the probes' p50 / max latency while it ran.
"""

import http.client
import json
import os
import resource
import signal
import socket
import statistics
import sys
import threading
import time
import urllib.parse
import zlib

URL, OWNER, PID = sys.argv[1], sys.argv[2], int(sys.argv[3])
HOST, PORT = urllib.parse.urlsplit(URL).hostname, urllib.parse.urlsplit(URL).port
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_mib(field="VmRSS"):
    with open(f"/proc/{PID}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def connect(source="127.0.0.1", timeout=30):
    conn = http.client.HTTPConnection(HOST, PORT, timeout=timeout, source_address=(source, 0))
    return conn


def request(conn, method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    return response.status, response.read()


def admin(method, path, body=None):
    conn = connect()
    headers = {"Authorization": f"Bearer {OWNER}", "Content-Type": "application/json"}
    status, data = request(conn, method, "/api/admin" + path, json.dumps(body) if body else None, headers)
    conn.close()
    return status, json.loads(data) if data else None


def new_key(workspace, name):
    status, body = admin("POST", f"/workspaces/{workspace}/mcp-keys", {"name": name, "expires": "30d"})
    assert status == 201, (status, body)
    return body["key"]["id"], body["token"]


def mcp_headers(token, version="2025-11-25"):
    return {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": version,
    }


def call(name, arguments, id=1):
    return {"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": name, "arguments": arguments}}


class Probe(threading.Thread):
    """Sends one request after another on a keep-alive connection, noting each latency."""

    def __init__(self, name, method, path, body=None, headers=None):
        super().__init__(daemon=True)
        self.label, self.method, self.path, self.body, self.headers = name, method, path, body, headers
        self.times, self.failures, self.stop = [], 0, threading.Event()

    def run(self):
        conn = connect(timeout=60)
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                status, _ = request(conn, self.method, self.path, self.body, self.headers)
                if status != 200:
                    self.failures += 1
            except (OSError, http.client.HTTPException):
                self.failures += 1
                conn.close()
                conn = connect(timeout=60)
            self.times.append(time.monotonic() - started)
            time.sleep(0.01)

    def summary(self):
        if not self.times:
            return f"{self.label}: no answer"
        ms = sorted(t * 1000 for t in self.times)
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        return (f"{self.label} p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms, max {ms[-1]:.0f} ms"
                f" ({len(ms)} requests, {self.failures} not 200)")


def under_attack(title, attack):
    """Runs `attack()` (it returns a list of lines) with both probes running."""
    victim = Probe("victim get_workspace", "POST", "/api/mcp",
                   json.dumps(call("get_workspace", {})), mcp_headers(VICTIM))
    health = Probe("/healthz", "GET", "/healthz")
    victim.start()
    health.start()
    before = rss_mib()
    started = time.monotonic()
    lines = attack()
    took = time.monotonic() - started
    victim.stop.set()
    health.stop.set()
    victim.join()
    health.join()
    print(f"\n== {title} ({took:.1f} s)")
    for line in lines:
        print(f"  {line}")
    print(f"  server RSS {before:.0f} -> {rss_mib():.0f} MiB (peak so far {rss_mib('VmHWM'):.0f})")
    print(f"  {health.summary()}")
    print(f"  {victim.summary()}")


def threads(n, target):
    workers = [threading.Thread(target=target, args=(i,), daemon=True) for i in range(n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


_, VICTIM = None, None
admin("POST", "/workspaces", {"name": "Victim"})
_, VICTIM = new_key("victim", "victim")
_, READER = new_key("acme", "leaked read key")
print(f"custory-mcp abuse bench, {os.cpu_count()} cores, {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}")
print(f"server RSS at the start: {rss_mib():.0f} MiB")


def batch_amplification():
    listing = lambda i: {"jsonrpc": "2.0", "id": i, "method": "tools/list"}
    huge = json.dumps([listing(i) for i in range(21_000)])
    conn = connect("127.0.0.2")
    try:
        status, data = request(conn, "POST", "/api/mcp", huge, mcp_headers(READER, "2025-03-26"))
    except (BrokenPipeError, ConnectionResetError):
        # The server may answer 413 from the head alone and close before the body is all sent;
        # its answer is then usually still there to read.
        try:
            response = conn.getresponse()
            status, data = response.status, response.read()
        except (OSError, http.client.HTTPException) as error:
            status, data = f"closed while the body was sent ({type(error).__name__})", b""
    lines = [f"one {len(huge) >> 10} KiB batch of 21,000 tools/list: {status}, {len(data)} bytes"]
    largest = json.dumps([listing(i) for i in range(256)])
    results = []

    def four(i):
        c = connect("127.0.0.2")
        for _ in range(5):
            s, d = request(c, "POST", "/api/mcp", largest, mcp_headers(READER, "2025-03-26"))
            results.append((s, len(d), d.count(b"not run")))

    threads(4, four)
    sizes = sorted({r[1] for r in results})
    lines.append(f"4 clients x 5 batches of 256 tools/list: statuses {sorted({r[0] for r in results})},"
                 f" answers {sizes[0] >> 10}-{sizes[-1] >> 10} KiB, {results[0][2]} members not run in each")
    # Clients that send the largest batch and never read the answer.
    held = []
    for _ in range(32):
        s = socket.create_connection((HOST, PORT), source_address=("127.0.0.2", 0))
        body = largest.encode()
        head = (f"POST /api/mcp HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {len(body)}\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in mcp_headers(READER, "2025-03-26").items())
                + "\r\n").encode()
        s.sendall(head + body)
        held.append(s)
    time.sleep(3)
    lines.append(f"32 clients that never read a 4 MiB answer, after 3 s: server RSS {rss_mib():.0f} MiB")
    for s in held:
        s.close()
    return lines


def starvation():
    search = lambda i: call("search", {"query": "trial"}, i)
    body = json.dumps([search(i) for i in range(256)])
    counts = {}
    stop = time.monotonic() + 10

    def loop(i):
        c = connect("127.0.0.3", timeout=60)
        while time.monotonic() < stop:
            s, _ = request(c, "POST", "/api/mcp", body, mcp_headers(READER, "2025-03-26"))
            counts[s] = counts.get(s, 0) + 1

    threads(8, loop)
    return [f"8 connections of one key, batches of 256 searches for 10 s: {dict(sorted(counts.items()))}"]


def forged(prefix):
    text = prefix + "".join("0123456789ABCDEFabcdef"[b % 22] for b in os.urandom(32))
    crc = zlib.crc32(text.encode())
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    digits = []
    for _ in range(6):
        digits.append(alphabet[crc % 62])
        crc //= 62
    return text + "".join(reversed(digits))


def forged_flood():
    counts = {}
    stop = time.monotonic() + 8

    def loop(i):
        c = connect("127.0.0.4")
        while time.monotonic() < stop:
            path, prefix = ("/api/admin/workspaces", "csa_") if i % 2 else ("/api/mcp", "cst_")
            headers = {"Authorization": f"Bearer {forged(prefix)}", "Content-Type": "application/json",
                       "Accept": "application/json, text/event-stream"}
            try:
                s, _ = request(c, "POST" if prefix == "cst_" else "GET", path, b'{"jsonrpc":"2.0","id":1,"method":"ping"}' if prefix == "cst_" else None, headers)
            except (OSError, http.client.HTTPException):
                s = "closed"
                c = connect("127.0.0.4")
            counts[s] = counts.get(s, 0) + 1

    threads(8, loop)
    total = sum(counts.values())
    return [f"8 connections of well-formed forged tokens (owner and MCP) for 8 s: {total} requests,"
            f" {dict(sorted(counts.items(), key=str))}"]


def revoke_in_flight():
    key_id, token = new_key("acme", "bulk writer")
    _, journey = admin("GET", "/workspaces/acme/audit?limit=1")  # warm
    conn = connect()
    _, got = request(conn, "POST", "/api/mcp", json.dumps(call("get_journey", {"journey": "trial-to-paid"})), mcp_headers(token))
    step = json.loads(json.loads(got)["result"]["content"][0]["text"])["stages"][0]["steps"][0]["id"]
    long = "d" * 3000
    body = json.dumps([call("create_item", {"step_id": step, "kind": "insight", "title": f"Bulk {i}", "description": long}, i)
                       for i in range(256)])
    answer = {}

    def send():
        c = connect("127.0.0.2", timeout=60)
        answer["status"], answer["body"] = request(c, "POST", "/api/mcp", body, mcp_headers(token, "2025-03-26"))

    sender = threading.Thread(target=send)
    sender.start()
    while True:
        _, events = admin("GET", "/workspaces/acme/audit?limit=20")
        if any(e["kind"] == "tool.called" and e["key_id"] == key_id for e in events["events"]):
            break
        time.sleep(0.002)
    status, _ = admin("POST", f"/workspaces/acme/mcp-keys/{key_id}/revoke")
    sender.join()
    replies = json.loads(answer["body"])
    refused = sum(1 for r in replies if r.get("error", {}).get("code") == -32001)
    # Events newest first: count this key's tool calls above its revoke.
    after, seen_revoke, cursor = 0, False, None
    called = 0
    while True:
        _, page = admin("GET", "/workspaces/acme/audit?limit=500" + (f"&cursor={cursor}" if cursor else ""))
        for e in page["events"]:
            if e["key_id"] != key_id:
                continue
            if e["kind"] == "key.revoked":
                seen_revoke = True
            elif e["kind"] == "tool.called":
                called += 1
                after += 0 if seen_revoke else 1
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return [f"a batch of 256 create_item, its key revoked (HTTP {status}) once the first ran:"
            f" {called} ran, {refused} refused, tool.called after key.revoked: {after}"]


def slowloris():
    held = []
    for i in range(3000):
        try:
            s = socket.create_connection((HOST, PORT), timeout=5, source_address=("127.0.0.2", 0))
            s.sendall(b"POST /api/mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1")
            held.append(s)
        except OSError:
            pass
    for i in range(2000):
        try:
            s = socket.create_connection((HOST, PORT), timeout=5, source_address=("127.0.0.3", 0))
            held.append(s)
        except OSError:
            pass
    time.sleep(12)
    still = 0
    for s in held:
        s.setblocking(False)
        try:
            data = s.recv(1)
            still += 0 if data == b"" else 1
        except BlockingIOError:
            still += 1
        except OSError:
            pass
        s.close()
    return [f"3,000 unfinished heads and 2,000 silent connections: {still} of {len(held)} still open after 12 s"]


def stalled_bodies():
    held = []
    chunk = b"[" + b" " * (512 * 1024)
    for i in range(800):
        source = f"127.0.0.{2 + i % 3}"
        try:
            s = socket.create_connection((HOST, PORT), timeout=5, source_address=(source, 0))
            s.sendall((f"POST /api/mcp HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {1000 * 1024}\r\n"
                       + "".join(f"{k}: {v}\r\n" for k, v in mcp_headers(READER).items()) + "\r\n").encode())
            s.setblocking(False)
            try:
                s.send(chunk)
            except BlockingIOError:
                pass
            held.append(s)
        except OSError:
            pass
    time.sleep(4)
    peak = rss_mib()
    time.sleep(8)
    for s in held:
        s.close()
    return [f"800 bodies of 1,000 KiB stalled halfway ({len(held)} connections made): server RSS {peak:.0f} MiB after 4 s"]


def write_flood():
    _, token = new_key("acme", "writer")
    conn = connect()
    _, got = request(conn, "POST", "/api/mcp", json.dumps(call("get_journey", {"journey": "trial-to-paid"})), mcp_headers(token))
    step = json.loads(json.loads(got)["result"]["content"][0]["text"])["stages"][0]["steps"][0]["id"]
    text = "w" * 9_000
    stored, counts = [0], {}
    stop = time.monotonic() + 10

    def loop(i):
        c = connect("127.0.0.2")
        batch = json.dumps([call("create_item", {"step_id": step, "kind": "insight", "title": f"Flood {i}", "description": text}, j) for j in range(100)])
        while time.monotonic() < stop:
            s, d = request(c, "POST", "/api/mcp", batch, mcp_headers(token, "2025-03-26"))
            counts[s] = counts.get(s, 0) + 1
            if s == 200:
                stored[0] += sum(1 for r in json.loads(d) if "result" in r and not r["result"].get("isError"))

    threads(4, loop)
    return [f"one key, 4 connections of 100-item batches (9 KB each) for 10 s: HTTP {dict(sorted(counts.items()))},"
            f" {stored[0]} items stored ({stored[0] * 9_000 / 1e6:.0f} MB of text)"]


def oauth_form(path, fields, source):
    conn = connect(source)
    try:
        return request(conn, "POST", path, urllib.parse.urlencode(fields),
                       {"Content-Type": "application/x-www-form-urlencoded"})[0]
    finally:
        conn.close()


def oauth_register(source, name):
    conn = connect(source)
    try:
        body = json.dumps({"client_name": name, "redirect_uris": ["http://127.0.0.1:9/cb"]})
        status, data = request(conn, "POST", "/oauth/register", body, {"Content-Type": "application/json"})
        return status, (json.loads(data).get("client_id") if status == 201 else None)
    finally:
        conn.close()


def oauth_flood():
    """Issue 31: strangers at /oauth/register (many networks) and /oauth/token (made-up codes)."""
    _, client_id = oauth_register("127.0.0.5", "flood target")
    counts = {"register": {}, "token": {}}
    stop = time.monotonic() + 8

    def loop(i):
        n = 0
        while time.monotonic() < stop:
            n += 1
            if i % 2:
                network = 10 + (i * 1000 + n) % 190  # a /24 of its own: 127.0.N.0/24
                what, (s, _) = "register", oauth_register(f"127.0.{network}.2", f"stranger {i}-{n}")
            else:
                code = "".join("abcdefghijklmnopqrstuvwxyz"[b % 26] for b in os.urandom(43))
                what, s = "token", oauth_form("/oauth/token", {
                    "grant_type": "authorization_code", "code": code, "client_id": client_id,
                    "redirect_uri": "http://127.0.0.1:9/cb", "code_verifier": "v" * 43}, "127.0.0.5")
            counts[what][s] = counts[what].get(s, 0) + 1

    threads(8, loop)
    return [f"4 connections registering from 190 networks for 8 s: {dict(sorted(counts['register'].items()))}",
            f"4 connections of made-up codes at /oauth/token for 8 s: {dict(sorted(counts['token'].items()))}"]


def oauth_crowd():
    """Issue 31: 1,000 registrations from 40 networks, then a new network registers."""
    counts = {}
    for n in range(1000):
        s, _ = oauth_register(f"127.0.{210 + n % 40}.3", f"crowd {n}")
        counts[s] = counts.get(s, 0) + 1
    fresh = [oauth_register(f"127.0.255.{3 + n}", f"fresh {n}")[0] for n in range(3)]
    return [f"1,000 registrations from 40 networks (127.0.210-249.0/24): {dict(sorted(counts.items()))}",
            f"then 3 from a new network (127.0.255.0/24): {fresh}"]


def import_document(items):
    """A workspace document of `items` items: 30 stages of 30 steps, each item with a description."""
    steps_total = 900
    parts = ['{"format":"custory-workspace/1","workspace":{"name":"Imported","slug":"imported"},"journeys":[{"slug":"big","name":"Big","stages":[']
    n = 0
    for s in range(30):
        parts.append(("," if s else "") + f'{{"name":"Stage {s}","steps":[')
        for t in range(30):
            count = items // steps_total + (1 if s * 30 + t < items % steps_total else 0)
            step_items = ",".join(
                f'{{"id":"i{n + i}","kind":"insight","title":"Imported insight {n + i}","description":"what the interview said, number {n + i}"}}'
                for i in range(count))
            n += count
            parts.append(("," if t else "") + f'{{"name":"Step {t}","items":[{step_items}]}}')
        parts.append("]}")
    parts.append("]}]}")
    return "".join(parts).encode()


def import_underneath():
    """Issue 31: a large import running while a key is revoked, twelve writers write, OAuth strangers
    flood and the probes (another workspace's key, /healthz) keep asking."""
    items = int(os.environ.get("BENCH_IMPORT_ITEMS", "1000000"))
    body = import_document(items)
    lines = [f"import of {items:,} items ({len(body) / 1e6:.0f} MB)"]
    state = {}

    def run_import():
        c = connect(timeout=3600)
        headers = {"Authorization": f"Bearer {OWNER}", "Content-Type": "application/json"}
        started = time.monotonic()
        c.request("POST", "/api/admin/imports?new=Imported", body=body, headers=headers)
        state["sent"] = time.monotonic() - started
        response = c.getresponse()
        state["status"], state["answer"] = response.status, response.read()[:300]
        state["took"] = time.monotonic() - started

    importer = threading.Thread(target=run_import, daemon=True)
    importer.start()
    while "sent" not in state:
        time.sleep(0.05)
    time.sleep(2)  # parsed and validated by now for the sizes measured; the slices are being written
    running = lambda: "took" not in state
    # A revoke while the import writes: how long it takes to answer, and the key's very next call.
    key_id, token = new_key("acme", "revoked mid-import")
    c = connect()
    before, _ = request(c, "POST", "/api/mcp", json.dumps(call("get_workspace", {})), mcp_headers(token))
    started = time.monotonic()
    status, _ = admin("POST", f"/workspaces/acme/mcp-keys/{key_id}/revoke")
    answered = time.monotonic() - started
    after, _ = request(c, "POST", "/api/mcp", json.dumps(call("get_workspace", {})), mcp_headers(token))
    lines.append(f"revoke while the import ran (import still running: {running()}): answered HTTP {status}"
                 f" in {answered * 1000:.0f} ms; the key's call before {before}, its very next call {after}")
    # Twelve writers (three keys, four connections each) and the OAuth flood, while the probes ask.
    step = None
    writers = [new_key("acme", f"writer {i}")[1] for i in range(3)]
    _, got = request(c, "POST", "/api/mcp", json.dumps(call("get_journey", {"journey": "trial-to-paid"})), mcp_headers(writers[0]))
    step = json.loads(json.loads(got)["result"]["content"][0]["text"])["stages"][0]["steps"][0]["id"]
    counts, stop = {}, time.monotonic() + float(os.environ.get("BENCH_LOAD_SECONDS", "20"))
    still = [True]

    def write(i):
        w = connect("127.0.0.2", timeout=60)
        n = 0
        while time.monotonic() < stop:
            n += 1
            try:
                s, _ = request(w, "POST", "/api/mcp", json.dumps(call("create_item", {"step_id": step, "kind": "insight", "title": f"W{i} {n}"})), mcp_headers(writers[i % 3]))
            except (OSError, http.client.HTTPException):
                s = "failed"
                w = connect("127.0.0.2", timeout=60)
            counts[s] = counts.get(s, 0) + 1
        still[0] = still[0] and running()

    flood = threading.Thread(target=oauth_flood, daemon=True)
    flood.start()
    threads(12, write)
    flood.join()
    lines.append(f"12 writers (3 keys) for {os.environ.get('BENCH_LOAD_SECONDS', '20')} s beside it: {dict(sorted(counts.items(), key=str))}"
                 f"; import still running at the end: {still[0]}")
    importer.join()
    lines.append(f"the import: HTTP {state['status']} after {state['took']:.1f} s (body sent in {state['sent']:.1f} s):"
                 f" {state['answer'][:160]!r}")
    return lines


def hostile_imports():
    """Issue 31: documents of nothing but empty goals, refused as soon as a limit is crossed."""
    lines = []
    for mib in (64, 511):
        with open(f"/proc/{PID}/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM: the peak below is this import's
        base = rss_mib("VmHWM")
        head = b'{"format":"custory-workspace/1","workspace":{"name":"Hostile","slug":"hostile"},"personas":[{"name":"P","goals":['
        chunk = b'"",' * (1 << 18)
        total = mib << 20
        n = (total - len(head) - 4) // len(chunk)

        def body():
            yield head
            for _ in range(n):
                yield chunk
            yield b'""]}]}'

        c = connect(timeout=600)
        headers = {"Authorization": f"Bearer {OWNER}", "Content-Type": "application/json"}
        started = time.monotonic()
        c.request("POST", "/api/admin/imports?new=Hostile", body=body(), headers=headers, encode_chunked=True)
        response = c.getresponse()
        answer = json.loads(response.read())
        took = time.monotonic() - started
        lines.append(f"{mib} MiB of empty goals: HTTP {response.status} after {took:.1f} s (the rest of the body read and dropped),"
                     f" server peak RSS {rss_mib('VmHWM'):.0f} MiB (from {base:.0f}):"
                     f" {answer['error']['details'][0]['path']}: {answer['error']['details'][0]['message'][:60]}")
    return lines


ONLY = [n for n in os.environ.get("ABUSE_ONLY", "").split(",") if n]
attacks = [
    ("1", "1. batch amplification", batch_amplification),
    ("2", "2. starvation: one key's parallel search batches", starvation),
    ("3", "3. forged credentials", forged_flood),
    ("4", "4. a revoke during a batch", revoke_in_flight),
    ("5", "5. slowloris and idle connections", slowloris),
    ("6", "6. stalled bodies", stalled_bodies),
    ("7", "7. write flood", write_flood),
    ("9", "9. OAuth strangers: registrations and made-up codes", oauth_flood),
    ("10", "10. OAuth registrations from 40 networks, then a new one", oauth_crowd),
    ("11", "11. an import underneath: a revoke, twelve writers, the OAuth flood", import_underneath),
    ("12", "12. hostile imports: lists of empty goals", hostile_imports),
]
for number, title, attack in attacks:
    if not ONLY or number in ONLY:
        under_attack(title, attack)

print("\n== 8. SIGTERM while a client holds a stalled body")
s = socket.create_connection((HOST, PORT), source_address=("127.0.0.2", 0))
s.sendall((f"POST /api/mcp HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 1000\r\n"
           + "".join(f"{k}: {v}\r\n" for k, v in mcp_headers(READER).items()) + "\r\n{").encode())
time.sleep(0.2)
started = time.monotonic()
os.kill(PID, signal.SIGTERM)
def running(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:  # reaped between two looks
        return False


while running(PID):
    time.sleep(0.01)
print(f"  the server exited {time.monotonic() - started:.1f} s after SIGTERM")
