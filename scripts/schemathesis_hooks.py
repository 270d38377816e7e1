"""Schemathesis hooks for `make test`.

`cargo lambda watch` (the local API gateway) answers 500 by itself, before any function runs, to a
request body that is not UTF-8; API Gateway in AWS hands such a body to the function base64-encoded,
and the functions answer 400 (tests/tests/invoke.rs checks that through `cargo lambda invoke`).
So that schemathesis tests the functions and not that emulator limit, such bodies are sent with
their invalid bytes replaced: still garbage, still refused, but garbage the emulator passes on.

The same limit holds for a header value outside ASCII (sent as Latin-1 bytes, which are not
UTF-8): `cargo lambda watch` answers 500 before the function runs. The description allows only
visible ASCII in its header parameters (`Idempotency-Key`), so only a negative case carries
such a value; it is sent as `not ascii`, which breaks the same rule (a space) and which the
emulator passes on, so the function's own refusal is what is checked.

Now and then `cargo lambda watch` answers a request with a 500 of its own
(`{"type":"https://httpstatuses.com/500",...}`, its `ServerError`) that no function wrote: our
functions' errors are JSON of another shape, and the portal's HTML. The portal's browser tests
ask such a page load once more (tests/portal/test_portal.py); so does `after_call` here, once,
saying so on stderr. Every other answer, 500s of ours included, is checked as it came.
"""
import sys

import schemathesis

EMULATOR_500 = b'{"type":"https://httpstatuses.com/500","status":500,"title":"Internal Server Error"}'


def _utf8(data):
    if isinstance(data, (bytes, bytearray)):
        try:
            bytes(data).decode("utf-8")
            return data
        except UnicodeDecodeError:
            return bytes(data).decode("utf-8", "replace").encode("utf-8")
    if isinstance(data, str):
        return data.encode("utf-8", "replace").decode("utf-8")
    return data


@schemathesis.hook
def before_call(ctx, case, kwargs):
    if isinstance(case.body, (bytes, bytearray, str)):
        case.body = _utf8(case.body)
    for name, value in list((case.headers or {}).items()):
        if isinstance(value, str) and not value.isascii():
            case.headers[name] = "not ascii"


@schemathesis.hook
def after_call(ctx, case, response):
    if response.status_code != 500 or response.content.strip() != EMULATOR_500:
        return
    import requests
    from schemathesis.core import NOT_SET

    again = requests.Session().send(response.request, timeout=60, allow_redirects=False)
    print(
        f"schemathesis_hooks: {case.method} {case.formatted_path}: cargo lambda's own 500, "
        f"asked once more: {again.status_code}",
        file=sys.stderr,
    )
    response.status_code = again.status_code
    response.headers = {k.lower(): [v] for k, v in again.headers.items()}
    response.content = again.content
    response.content_size = len(again.content)
    response.encoding = again.encoding
    response._deserialized = NOT_SET
    response._encoded_body = None
