"""A webhook receiver for tests/it/webhooks.rs: verifies every delivery with the Standard
Webhooks reference library and prints one JSON line per delivery on stdout.

Listens on 127.0.0.1 at the port given as the first argument (0: any), prints
{"port": N} first. The endpoint's secret is read from the file WEBHOOK_SECRET_FILE names, at
each request (the test writes it once the endpoint exists). A delivery whose signature does not
verify is answered 400 and printed with "verified": false. With WEBHOOK_DELAY (seconds), each
answer comes that much later (a slow receiver), printed once answered. With WEBHOOK_UNSIGNED=1
(a Slack-style receiver) nothing is verified: every delivery is taken, "verified": null.
"""

import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        with open(os.environ["WEBHOOK_SECRET_FILE"]) as f:
            secret = f.read().strip()
        headers = {k.lower(): v for k, v in self.headers.items()}
        if os.environ.get("WEBHOOK_UNSIGNED") == "1":
            payload = None
            verified = None
        else:
            try:
                payload = Webhook(secret).verify(body, headers)
                verified = True
            except WebhookVerificationError:
                payload = None
                verified = False
        time.sleep(float(os.environ.get("WEBHOOK_DELAY", "0")))
        line = {
            "verified": verified,
            "id": headers.get("webhook-id"),
            "type": payload.get("type") if payload else None,
            "body": body.decode("utf-8", "replace"),
        }
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        self.send_response(400 if verified is False else 204)
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    server = HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    sys.stdout.write(json.dumps({"port": server.server_address[1]}) + "\n")
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
