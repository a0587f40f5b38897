#!/usr/bin/env python3
"""A webhook receiver that verifies Herald's signatures with the public Standard Webhooks library.

    pip install standardwebhooks
    HERALD_ENDPOINT_SECRET=whsec_... python3 examples/receiver.py 9000

Answers 204 to a webhook whose signature verifies (and which it has not seen before: receivers
dedupe on webhook-id, which stays the same on every retry), 401 to one that does not.
"""
import http.server
import json
import os
import sys

from standardwebhooks.webhooks import Webhook

webhook = Webhook(os.environ["HERALD_ENDPOINT_SECRET"])
seen = set()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        try:
            event = webhook.verify(body, dict(self.headers.items()))
        except Exception as e:  # the library raises WebhookVerificationError
            print(f"refused: {e}", flush=True)
            self.send_response(401)
            self.end_headers()
            return
        webhook_id = self.headers["webhook-id"]
        duplicate = webhook_id in seen
        seen.add(webhook_id)
        print(f"verified {webhook_id}{' (duplicate)' if duplicate else ''}: {json.dumps(event)}", flush=True)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
print(f"listening on http://127.0.0.1:{port}/webhooks", flush=True)
http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
