//! The VERIFY.md of an evidence bundle: how to check it with standard
//! tools alone. `tests/cli_bundle.rs` runs its Python when `cryptography`
//! is importable.

pub fn verify_md(run_id: &str, genflow: &str, definition_hash: &str) -> String {
    format!(
        r#"# Evidence bundle for run {run_id}

Genflow `{genflow}`, definition `{definition_hash}`.

With Fleet installed, one command checks everything below:

    fleet verify . --key KEY

where KEY is the public key you got from the installation's owner (not the
`pubkey.txt` in this directory: a bundle cannot vouch for itself).

## What is here

- `genflow.json`: the exact definition the run executed (canonical JSON).
- `documents/`: the latest revision of every document (`decision.md` is the
  decision record, `decision.intoto.json` its signed in-toto attestation).
- `artifacts/revN/`: every revision of every document; `artifacts.json` lists them with sha256.
- `steps/STEP.attemptN.json`: per step attempt: model, prompt, settings, tokens, and
  the corpus manifest (size, lines, blake3 per file; `sha256` of every file kept).
- `corpus/STEP/PATH`: the text each report or review step read, byte for byte
  (`corpus/STEP/@attemptN/PATH` where an earlier attempt read other bytes);
  `corpus.json` says which file is which step's `PATH`, with its sha256. A citation
  `PATH:LINE` in a document points into `corpus/STEP/PATH`.
- `decisions.json`: every decision with approver, channel, time and the revisions shown.
- `events.jsonl`: the run's audit events. `chain.jsonl`: the stretch of the whole
  audit log from the run's first event to the event a checkpoint signs (other
  runs' events sit in between).
- `checkpoints/checkpoint-N.txt`: signed checkpoints (C2SP signed notes) of the
  log's first N events.
- `pubkey.txt`: the key the signatures are by, as `fleet audit pubkey` prints it.
- `SHA256SUMS`: sha256 of every other file.

## Checking it by hand

1. Files are intact (and nothing else is in the directory):

       sha256sum -c SHA256SUMS

2. The definition is the one recorded:

       printf 'sha256:%s\n' "$(sha256sum genflow.json | cut -d' ' -f1)"

   must print `{definition_hash}`.

3. The signatures are by the key you expect, and the corpus files are the
   ones the manifests name. Save as `check.py`, run `python3 check.py 'KEY'`
   (needs the `cryptography` package: `pip install cryptography`):

       import base64, glob, hashlib, json, sys
       from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

       vkey = sys.argv[1].strip()  # NAME+KEYID+BASE64(0x01 || key)
       assert vkey == open("pubkey.txt").read().strip(), "bundle is signed by another key"
       name, keyid, b64 = vkey.split("+", 2)
       raw = base64.b64decode(b64)
       assert raw[0] == 1 and len(raw) == 33, "not an ed25519 vkey"
       key = Ed25519PublicKey.from_public_bytes(raw[1:])
       sha = lambda path: hashlib.sha256(open(path, "rb").read()).hexdigest()

       # DSSE: the signature is over PAE(payloadType, payload).
       for path in sorted(glob.glob("**/*.intoto.json", recursive=True)):
           env = json.load(open(path))
           payload = base64.b64decode(env["payload"])
           kind = env["payloadType"].encode()
           pae = b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)
           sig = next(s for s in env["signatures"] if s["keyid"] == keyid)
           key.verify(base64.b64decode(sig["sig"]), pae)  # raises if forged
           for subject in json.loads(payload)["subject"]:
               revs = glob.glob("artifacts/rev*/" + subject["name"])
               assert any(sha(r) == subject["digest"]["sha256"] for r in revs), subject
           print(path, "signature ok, subjects present")

       # Checkpoints: C2SP signed notes; the signature is over the text
       # before the blank line; its first 4 bytes are the key id.
       for path in sorted(glob.glob("checkpoints/*.txt")):
           body, sigs = open(path, encoding="utf-8").read().split("\n\n", 1)
           raw = base64.b64decode(sigs.split("\n")[0].split(" ")[2])
           assert raw[:4].hex() == keyid, path
           key.verify(raw[4:], (body + "\n").encode())
           print(path, "signature ok")

       # Kept corpus: each file is the bytes its step's manifest names.
       for f in json.load(open("corpus.json")):
           manifest = json.load(open("steps/%s.attempt%d.json" % (f["step"], f["attempt"])))["manifest"]
           entry = next(e for e in manifest["entries"] if e["path"] == f["path"])
           assert entry["sha256"] == f["sha256"] == sha(f["file"]), f["file"]
       print("corpus ok")

   The attestation also signs each step's manifest: its `corpusManifestSha256`
   is the sha256 of the manifest in RFC 8785 canonical JSON, so a manifest, and
   the corpus digests in it, cannot change without breaking the signature.

4. The documents are the ones decided on: each `sha256` in `decision.md` (and in
   `decisions.json` under `shown`) must equal `sha256sum documents/<name>`.

5. Each event's hash is sha256 over the RFC 8785 canonical JSON of its fields
   `seq, run_id, at, kind, payload, prev_hash`, and each event's `prev_hash` is
   the hash of the event before it. For these events (strings and integers
   only), Python's sorted compact JSON is the same text:

       python3 - <<'PY'
       import hashlib, json
       prev = None
       for line in open("chain.jsonl"):
           e = json.loads(line)
           body = {{k: e[k] for k in ("seq", "run_id", "at", "kind", "payload", "prev_hash")}}
           text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
           assert hashlib.sha256(text.encode()).hexdigest() == e["hash"], e["seq"]
           assert prev is None or e["prev_hash"] == prev, e["seq"]
           prev = e["hash"]
       print("chain ok up to event", e["seq"], e["hash"])
       PY

   A checkpoint `checkpoints/checkpoint-N.txt` whose N is in `chain.jsonl`
   signs event N's hash (third line, base64): so the run's events, linked to
   event N, are the log that was signed.
"#
    )
}
