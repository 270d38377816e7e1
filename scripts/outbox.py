#!/usr/bin/env python3
"""The local emulator's SES outbox: every email the stack sent, newest last.

    python3 scripts/outbox.py [--to ADDRESS] [--html]

Reads `GET $AWS_ENDPOINT_URL/moto-api/ses/outbox.json` (scripts/moto_server.py: what moto's SES
"sent", as `/moto-api/data.json` has it under `ses` -> `Message`, without the rest); the endpoint
comes from the environment or from the running `make dev` stack's `.stack/env`. Only the Python
standard library: runs with any python3.
"""
import argparse
import html
import json
import os
import re
import sys
import urllib.request
from pathlib import Path


def endpoint() -> str:
    if os.environ.get("AWS_ENDPOINT_URL"):
        return os.environ["AWS_ENDPOINT_URL"]
    env = Path(__file__).resolve().parent.parent / ".stack" / "env"
    if env.exists():
        for line in env.read_text().splitlines():
            key, _, value = line.partition("=")
            if key == "AWS_ENDPOINT_URL":
                return value
    sys.exit("no AWS_ENDPOINT_URL, and no running local stack (.stack/env): start one with `make dev`")


def as_text(body: str) -> str:
    """The HTML part as plain lines: table rows on a line each, cells tab-separated."""
    body = re.sub(r"</(p|tr|h\d|thead|tbody|tfoot)>", "\n", body)
    body = re.sub(r"</t[dh]>", "\t", body)
    body = re.sub(r"<[^>]+>", "", body)
    lines = [" ".join(line.split("\t")).strip() for line in html.unescape(body).splitlines()]
    return "\n".join(line for line in lines if line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--to", help="only the emails to this address")
    parser.add_argument("--html", action="store_true", help="print the HTML as sent, not as text")
    args = parser.parse_args()
    with urllib.request.urlopen(f"{endpoint()}/moto-api/ses/outbox.json", timeout=30) as r:
        messages = json.load(r)
    shown = 0
    for m in messages:
        to = m.get("destinations", {}).get("ToAddresses", [])
        if args.to and args.to not in to:
            continue
        shown += 1
        print(f"From:    {m.get('source')}\nTo:      {', '.join(to)}\nSubject: {m.get('subject')}\n")
        print(m.get("body", "") if args.html else as_text(m.get("body", "")))
        print("-" * 72)
    print(f"{shown} email(s)", file=sys.stderr)


if __name__ == "__main__":
    main()
