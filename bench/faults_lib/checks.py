"""The fault campaign's checks: what the database, the client and the SMTP
server saw must agree, with nothing lost or done twice (docs/FAULTS.md)."""

import json
import os
from collections import Counter, defaultdict
from datetime import datetime

# fleet_notify::DeliveryPolicy::default().max_attempts
DELIVERY_ATTEMPTS = 5


def parse_time(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def first_line(text):
    text = (text or "").strip()
    return text.splitlines()[-1][:160] if text else "(no output)"


def check(c):
    """Every check of docs/FAULTS.md on campaign `c`, after it settled; failures go
    to `c.fail`."""
    runs = {rid: status for rid, status in c.query("SELECT id, status FROM runs")}
    for rid in c.started:
        if rid not in runs:
            c.fail(f"run {rid}: started (its id was printed) but not stored", "lost")
    seqs = Counter(c.started.values())
    for seq, n in seqs.items():
        if n > 1:
            c.fail(f"seq {seq}: {n} runs stored for one start", "dup")
    extra = set(runs) - set(c.started)
    for rid in extra:
        c.fail(f"run {rid}: stored but its start was never acknowledged (status {runs[rid]})")

    decisions = defaultdict(list)
    for rid, step, rnd, verdict, reason in c.query(
            "SELECT run_id, step, gate_round, verdict, coalesce(reason, '') FROM decisions"):
        decisions[(rid, step, rnd)].append((verdict, reason))
    for key, ds in decisions.items():
        if len(ds) > 1:
            c.fail(f"run {key[0]}: {len(ds)} decisions at {key[1]} round {key[2]}", "dup")
    decided_runs = Counter(k[0] for k in decisions)

    completions = Counter()
    for rid, payload in c.query(
            "SELECT run_id, payload_json FROM events WHERE kind = 'step.status'"):
        p = json.loads(payload)
        if p.get("status") in ("succeeded", "approved", "rejected"):
            completions[(rid, p.get("step"))] += 1
    for (rid, step), n in completions.items():
        if n > 1:
            c.fail(f"run {rid}: step {step} completed {n} times", "dup")
    ok_records = Counter()
    failed_records = defaultdict(list)
    for rid, step, error in c.query(
            "SELECT run_id, step, coalesce(error, '') FROM step_runs WHERE finished_at IS NOT NULL"):
        if error:
            failed_records[rid].append((step, error))
        else:
            ok_records[(rid, step)] += 1
    for (rid, step), n in ok_records.items():
        if n > 1:
            c.fail(f"run {rid}: {n} successful records of step {step}", "dup")

    outbox = c.query(
        "SELECT run_id, purpose, status, coalesce(message_id, ''), coalesce(finished_at, ''), "
        "attempts, coalesce(last_error, '') FROM outbox")
    by_run = defaultdict(list)
    for rid, purpose, status, mid, fin, attempts, error in outbox:
        by_run[rid].append((purpose, status, mid, fin))
        # Giving up is correct only once every attempt was spent (the
        # default policy's 5); sooner, a message was dropped for a fault
        # that would have passed.
        if status == "failed" and int(attempts) < DELIVERY_ATTEMPTS:
            c.fail(f"run {rid}: {purpose} delivery given up after {attempts} attempt(s): "
                      f"{error[:160]}", "lost")
    receipts = defaultdict(list)
    with c.smtp.lock:
        for mid, t in c.smtp.receipts:
            receipts[mid].append(t)
    c.repeats_before_sent = 0
    c.deliveries = Counter()
    for rid, rows in by_run.items():
        for purpose, status, mid, fin in rows:
            c.deliveries[status] += 1
            if status in ("pending", "sending"):
                c.fail(f"run {rid}: {purpose} delivery still {status}", "lost")
            if status != "sent":
                continue
            got = receipts.get(mid, [])
            if not got:
                c.fail(f"run {rid}: {purpose} delivery marked sent, never received", "lost")
                continue
            sent_at = parse_time(fin)
            after = [t for t in got if t > sent_at]
            if after:
                c.fail(f"run {rid}: {purpose} delivery {mid} received {len(after)} more "
                          f"time(s) after it was marked sent", "dup")
            c.repeats_before_sent += len(got) - 1 - len(after)

    c.outcomes = Counter()
    ok = 0
    for rid, status in runs.items():
        c.outcomes[status] += 1
        want = c.decided.get(rid)
        if want is None and rid in c.attempted:
            # The command failed but its commit may have landed (an
            # answer lost with its connection): the stored decision,
            # if any, must be the one it sent.
            want = c.attempted[rid]
        stored = [d for k, ds in decisions.items() if k[0] == rid for d in ds]
        purposes = Counter((p, s) for p, s, _, _ in by_run.get(rid, []))
        good = True
        if rid in c.decided and not stored:
            c.fail(f"run {rid}: the client's {want} was acknowledged but is not stored", "lost")
            good = False
        if stored and want is None:
            c.fail(f"run {rid}: a decision is stored that the client never saw succeed")
            good = False
        if status == "succeeded":
            good &= expect(c, rid, want == "go" and stored and stored[0][0] == "go",
                                f"succeeded without a stored Go ({stored})")
            good &= expect(c, rid, purposes.get(("announce", "sent"), 0) + purposes.get(("announce", "failed"), 0) >= 1,
                                f"succeeded but no announcement was delivered ({dict(purposes)})")
            for step in ("readiness", "risk-review", "go-no-go", "announce"):
                good &= expect(c, rid, completions[(rid, step)] == 1,
                                    f"succeeded but {step} completed {completions[(rid, step)]} times")
        elif status == "rejected":
            good &= expect(c, rid, want == "no-go" and stored and stored[0][0] in ("no-go", "no_go", "nogo", "reject", "rejected") and stored[0][1],
                                f"rejected without a stored No-go with a reason ({stored})")
            good &= expect(c, rid, not any(p == "announce" for p, _ in purposes),
                                "rejected but an announcement was queued")
        elif status == "failed":
            errors = failed_records.get(rid, [])
            if not (errors and not stored):
                # Why the engine failed it, from the audit log (a notify
                # step's failure has no step record).
                why = [json.loads(p).get("error", "")[:200] for (p,) in c.query(
                    "SELECT payload_json FROM events WHERE kind = 'engine.step_failed' "
                    f"AND run_id = '{rid}' ORDER BY seq")]
                good &= expect(c, rid, False,
                               f"failed without a recorded step error, or after a decision "
                               f"({errors[:1]}, {stored}); engine: {why}")
            good &= expect(c, rid, all(s in ("readiness", "risk-review") for s, _ in errors),
                                f"a step other than a model step failed: {errors[:2]}")
        else:
            c.fail(f"run {rid}: ended the campaign {status}", "lost")
            good = False
        ok += bool(good)
    c.ok = ok

    for name in sorted(os.listdir(c.logdir)):
        with open(os.path.join(c.logdir, name), errors="replace") as f:
            text = f.read()
        if "panicked" in text:
            c.fail(f"{name}: a panic: {text[text.index('panicked'):][:200]}")

    r = c.fleet_cmd("audit", "verify", timeout=300)
    if r.returncode != 0:
        c.fail(f"fleet audit verify exited {r.returncode}: {first_line(r.stderr or r.stdout)}")

def expect(c, rid, cond, msg):
    if not cond:
        c.fail(f"run {rid}: {msg}")
    return bool(cond)
