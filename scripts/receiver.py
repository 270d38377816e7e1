#!/usr/bin/env python3
"""A webhook receiver for trying the local stack: prints each delivery, checks its Standard
Webhooks signature when given the webhook's secret, and answers 200 (or --status).

    python3 scripts/receiver.py --port 8765 --secret whsec_...
"""
import argparse
import base64
import hashlib
import hmac
import http.server
import json


def verify(secret, headers, body):
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers.get('webhook-id')}.{headers.get('webhook-timestamp')}.".encode() + body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(expected, s) for s in headers.get("webhook-signature", "").split())


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--secret", help="the webhook's whsec_ secret, to check signatures")
    p.add_argument("--status", type=int, default=200, help="the status to answer with")
    args = p.parse_args()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            check = ""
            if args.secret:
                check = " signature OK" if verify(args.secret, self.headers, body) else " BAD SIGNATURE"
            print(f"{self.command} {self.path} webhook-id={self.headers.get('webhook-id')}{check}", flush=True)
            try:
                print(json.dumps(json.loads(body), indent=2), flush=True)
            except ValueError:
                print(body, flush=True)
            self.send_response(args.status)
            self.end_headers()

        def log_message(self, *_):
            pass

    print(f"listening on http://127.0.0.1:{args.port}/ (answering {args.status})", flush=True)
    http.server.HTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
