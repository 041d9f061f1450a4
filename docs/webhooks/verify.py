"""Verify a pigeonpost webhook (Python 3, standard library only)."""
import hashlib
import hmac
import os
import sys
import time

TOLERANCE_SECONDS = 5 * 60


def verify_webhook(secret, header, raw_body, now=None):
    """True when the X-Pigeonpost-Signature header signs raw_body (the bytes
    as received, before any JSON parsing) with the endpoint's secret, at a
    time within 5 minutes of now."""
    timestamp, signatures = None, []
    for part in (header or "").split(","):
        key, eq, value = part.partition("=")
        if not eq:
            return False
        key, value = key.strip(), value.strip()
        if key == "t":
            timestamp = value
        if key == "v1":
            signatures.append(value.lower().encode())
    if not timestamp or not (timestamp.isascii() and timestamp.isdigit()) or not signatures:
        return False
    if abs((time.time() if now is None else now) - int(timestamp)) > TOLERANCE_SECONDS:
        return False
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + raw_body, hashlib.sha256).hexdigest().encode()
    return any(hmac.compare_digest(expected, given) for given in signatures)


if __name__ == "__main__":
    # WEBHOOK_SECRET and WEBHOOK_SIGNATURE from the environment, the raw
    # body on standard input; exit status 0 when valid.
    ok = verify_webhook(os.environ.get("WEBHOOK_SECRET", ""), os.environ.get("WEBHOOK_SIGNATURE", ""), sys.stdin.buffer.read())
    print("valid" if ok else "invalid")
    sys.exit(0 if ok else 1)
