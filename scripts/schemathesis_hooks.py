"""Schemathesis hooks for `make test`.

`cargo lambda watch` (the local API gateway) answers 500 by itself, before any function runs, to a
request body that is not UTF-8; API Gateway in AWS hands such a body to the function base64-encoded,
and the functions answer 400 (tests/tests/invoke.rs checks that through `cargo lambda invoke`).
So that schemathesis tests the functions and not that emulator limit, such bodies are sent with
their invalid bytes replaced: still garbage, still refused, but garbage the emulator passes on.
"""
import schemathesis


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
