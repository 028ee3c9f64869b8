"""The fault campaign's servers: a model server and an SMTP server that
fail at random, and the count of faults they injected."""

import hashlib
import json
import socket
import socketserver
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# The model's `timeout` in the campaign's config, in seconds.
MODEL_TIMEOUT_S = 2


class Faults:
    """Thread-safe counts of injected faults by kind."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts = Counter()

    def add(self, kind, n=1):
        with self.lock:
            self.counts[kind] += n

    def total(self):
        with self.lock:
            return sum(self.counts.values())

    def snapshot(self):
        with self.lock:
            return dict(sorted(self.counts.items()))


# ---------------------------------------------------------------- model server

REPORT = """# Release readiness ({tag})

## Summary
The release candidate was built and its checklist is complete. No open
blocking issues are recorded for this run.

## Rollback
Roll back by redeploying the previous build.
"""

REVIEW = """# Risk review ({tag})

The readiness report is short; nothing it claims is contradicted.

```json
{{"flags": [{{"id": "F1", "severity": "low", "claim": "The report does not say who watches the rollout"}}]}}
```
"""

UNREADABLE_REVIEW = """# Risk review ({tag})

```json
{{"flags": [{{"id": "F1", "severity": "low", "claim": "cut off
```
"""


def completion(text):
    return json.dumps({
        "id": "chatcmpl-faults",
        "object": "chat.completion",
        "model": "faults-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 50},
    }).encode()


def make_model_handler(rng, rng_lock, faults, stop):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def send(self, status, body, headers=()):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace")
            review = "Adversarially review" in body
            tag = hashlib.sha256(body.encode()).hexdigest()[:12]
            with rng_lock:
                roll = rng.random()
            if roll < 0.08:
                faults.add("model_429")
                self.send(429, b'{"error": {"message": "rate limited"}}', [("Retry-After", "1")])
            elif roll < 0.16:
                faults.add("model_500")
                self.send(500, b'{"error": {"message": "internal error"}}')
            elif roll < 0.21:
                faults.add("model_timeout")
                # Past the model's timeout; the client gives up first.
                stop.wait(MODEL_TIMEOUT_S + 1.5)
                try:
                    self.send(500, b'{"error": {"message": "too late"}}')
                except OSError:
                    pass
            elif roll < 0.26:
                faults.add("model_malformed_json")
                full = completion((REVIEW if review else REPORT).format(tag=tag))
                self.send(200, full[: len(full) // 2])
            elif review and roll < 0.30:
                faults.add("model_unreadable_flags")
                self.send(200, completion(UNREADABLE_REVIEW.format(tag=tag)))
            else:
                self.send(200, completion((REVIEW if review else REPORT).format(tag=tag)))

    return Handler


class ModelServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A worker SIGKILLed mid-request resets its connection: expected here.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


# ----------------------------------------------------------------- SMTP server


class Smtp:
    """A minimal SMTP server that drops connections mid-DATA at random and
    records (Message-ID, time) of each message it accepted, before its 250."""

    def __init__(self, rng, rng_lock, faults, drop_rate=0.15):
        self.receipts = []
        self.lock = threading.Lock()
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line):
                self.wfile.write((line + "\r\n").encode())
                self.wfile.flush()

            def handle(self):
                self.request.settimeout(30)
                try:
                    self.reply("220 faults.local ESMTP")
                    while True:
                        line = self.rfile.readline()
                        if not line:
                            return
                        cmd = line.decode("utf-8", "replace").strip().upper()
                        if cmd.startswith("EHLO"):
                            self.wfile.write(b"250-faults.local\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
                            self.wfile.flush()
                        elif cmd.startswith("DATA"):
                            self.reply("354 go ahead")
                            with rng_lock:
                                drop = rng.random() < drop_rate
                                drop_after = rng.randint(1, 12)
                            lines = 0
                            message_id = None
                            while True:
                                data = self.rfile.readline()
                                if not data:
                                    return
                                lines += 1
                                if drop and lines >= drop_after:
                                    faults.add("smtp_drop_mid_data")
                                    self.request.shutdown(socket.SHUT_RDWR)
                                    return
                                if data.lower().startswith(b"message-id:") and message_id is None:
                                    message_id = data.split(b":", 1)[1].strip().decode()
                                if data in (b".\r\n", b".\n"):
                                    break
                            with outer.lock:
                                outer.receipts.append((message_id, time.time()))
                            self.reply("250 accepted")
                        elif cmd.startswith("QUIT"):
                            self.reply("221 bye")
                            return
                        else:
                            # HELO, MAIL, RCPT, RSET, NOOP
                            self.reply("250 ok")
                except OSError:
                    return

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
