"""Checks a Fleet decision attestation with nothing of Fleet's: DSSE's
pre-authentication encoding written out here from the DSSE spec, and
ed25519 from the `cryptography` package (PyPI).

Usage: verify_dsse.py ATTESTATION.intoto.json VKEY

VKEY is what `fleet audit pubkey` prints: NAME+KEYHASH+BASE64(0x01 || key).
Exits non-zero unless the envelope verifies, and verifies no longer after
one byte of the payload or one subject digest is changed.
"""

import base64
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def pae(payload_type: str, payload: bytes) -> bytes:
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def public_key(vkey: str) -> Ed25519PublicKey:
    name, key_hash, b64 = vkey.strip().split("+", 2)
    raw = base64.b64decode(b64)
    if raw[0] != 0x01 or len(raw) != 33:
        sys.exit(f"not an ed25519 vkey: {vkey}")
    return Ed25519PublicKey.from_public_bytes(raw[1:])


def verifies(envelope: dict, key: Ed25519PublicKey) -> bool:
    payload = base64.b64decode(envelope["payload"])
    for s in envelope["signatures"]:
        try:
            key.verify(base64.b64decode(s["sig"]), pae(envelope["payloadType"], payload))
            return True
        except InvalidSignature:
            continue
    return False


def main():
    path, vkey = sys.argv[1], sys.argv[2]
    key = public_key(vkey)
    with open(path) as f:
        envelope = json.load(f)
    if envelope["payloadType"] != "application/vnd.in-toto+json":
        sys.exit(f"unexpected payloadType {envelope['payloadType']}")
    if not verifies(envelope, key):
        sys.exit("FAILED: the attestation does not verify with the key")
    statement = json.loads(base64.b64decode(envelope["payload"]))
    if statement["_type"] != "https://in-toto.io/Statement/v1" or not statement["subject"]:
        sys.exit("FAILED: not an in-toto Statement v1 with subjects")

    # One byte of the payload changed.
    payload = bytearray(base64.b64decode(envelope["payload"]))
    payload[len(payload) // 2] ^= 0x01
    flipped = dict(envelope, payload=base64.b64encode(bytes(payload)).decode())
    if verifies(flipped, key):
        sys.exit("FAILED: a changed payload byte still verifies")

    # One subject digest changed (a document swapped after the decision).
    forged = json.loads(json.dumps(statement))
    digest = forged["subject"][0]["digest"]["sha256"]
    forged["subject"][0]["digest"]["sha256"] = ("0" if digest[0] != "0" else "1") + digest[1:]
    swapped = dict(envelope, payload=base64.b64encode(json.dumps(forged).encode()).decode())
    if verifies(swapped, key):
        sys.exit("FAILED: a changed subject digest still verifies")

    p = statement["predicate"]
    print(f"dsse ok: {p['verdict']} by {p['approver']} on {len(statement['subject'])} subjects "
          f"verified with python cryptography; a changed payload byte and a changed digest are refused")


if __name__ == "__main__":
    main()
