"""A collector for bench/audit-sink.sh: takes the audit stream's gzip NDJSON batches on
POST /ingest, counts the lines by source, notes duplicates and anything out of order, and
answers GET /stats with what it saw. Optionally waits DELAY seconds before answering a batch
(a slow collector).

    python3 bench/audit_collector.py PORT [DELAY]
"""

import gzip
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1])
DELAY = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
lock = threading.Lock()
stats = {"batches": 0, "lines": 0, "bytes_gzip": 0, "bytes_plain": 0, "duplicates": 0,
         "out_of_order": 0, "first_at": None, "last_at": None}
seen = {"audit": set(), "calls": set()}
last = {"audit": 0, "calls": 0}


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if DELAY:
            time.sleep(DELAY)
        text = gzip.decompress(body)
        with lock:
            now = time.time()
            stats["first_at"] = stats["first_at"] or now
            stats["last_at"] = now
            stats["batches"] += 1
            stats["bytes_gzip"] += len(body)
            stats["bytes_plain"] += len(text)
            for raw in text.splitlines():
                line = json.loads(raw)
                source, ident = line["source"], line["id"]
                stats["lines"] += 1
                if ident in seen[source]:
                    stats["duplicates"] += 1
                    continue
                if ident < last[source]:
                    stats["out_of_order"] += 1
                seen[source].add(ident)
                last[source] = max(last[source], ident)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        with lock:
            answer = dict(stats, audit=len(seen["audit"]), calls=len(seen["calls"]))
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
