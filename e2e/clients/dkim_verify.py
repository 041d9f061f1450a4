"""Verify a message's DKIM signatures with dkimpy, a second verifier beside
the driver's go-msgauth (pigeonpost signs with its own code).

Reads the message on stdin. DKIM_KEYS is a JSON object of the TXT records
to answer, by name ("sel._domainkey.example.test"). Exits 0 when the
signature verifies, 1 (with the reason) when not.
"""

import json
import os
import sys

import dkim

keys = json.loads(os.environ["DKIM_KEYS"])


def lookup(name, timeout=5):
    return keys.get(name.decode().rstrip(".").lower(), "").encode()


message = sys.stdin.buffer.read()
verifier = dkim.DKIM(message)
if verifier.verify(dnsfunc=lookup):
    sys.exit(0)
print("dkimpy: signature does not verify", file=sys.stderr)
sys.exit(1)
