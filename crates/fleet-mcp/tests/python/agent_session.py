"""An agent's MCP session against `fleet mcp`, driven by the reference
Python client (the `mcp` package from PyPI; nobody here wrote it).

Usage: agent_session.py FLEET_BINARY EXAMPLE_DIR

Copies the release-gate example into a scratch workspace with a `version`
parameter, then over stdio: initialises, lists the tools, starts a run with
a parameter, reads the readiness report and the review flags, and tries to
decide the gate every way the protocol allows (an unknown tool, an extra
argument). Exits non-zero unless the run still waits at its gate with no
decision recorded, as `fleet show` (a separate process) reports it.
"""

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

EXPECTED_TOOLS = {
    "list_genflows",
    "validate_config",
    "start_run",
    "list_runs",
    "show_run",
    "read_document",
    "read_flags",
    "gate_status",
    "send_decision_link",
}

CONFIG = """approvers: [release-owner@example.com]
genflows:
  - name: release-gate
    release: "{{ params.version }}"
    params:
      - {name: version, pattern: '\\d+\\.\\d+\\.\\d+', description: The release being gated}
    steps:
      - {name: readiness, kind: report, out: readiness.md, prompt: "Readiness of {{ params.version }}.", corpus: ["docs/runbooks/*.md", "docs/releases/{{ params.version }}.md", "migrations/**"]}
      - {name: risk-review, kind: review, depends_on: [readiness], out: risks.md, prompt: Flag what the report underplays.}
      - {name: go-no-go, kind: approval, depends_on: [readiness, risk-review], question: "Ship {{ params.version }}?", out: decision.md}
"""


def fail(message):
    print(f"mcp agent session: FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def payload(result):
    """The JSON a tool returned (Fleet's tools return one JSON text block)."""
    if result.is_error:
        fail(f"tool error: {result.content}")
    return json.loads(result.content[0].text)


async def session(fleet, workspace):
    env = dict(os.environ, FLEET_USER="agent-owner@example.com")
    env.pop("FLEET_CONFIG", None)
    params = StdioServerParameters(command=fleet, args=["-C", workspace, "mcp"], env=env)
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as s:
            await s.initialize()
            tools = {t.name for t in (await s.list_tools()).tools}
            if tools != EXPECTED_TOOLS:
                fail(f"tools {sorted(tools)} != {sorted(EXPECTED_TOOLS)}")
            for name in tools:
                if any(w in name for w in ("decide", "approve", "reject", "cancel", "edit", "write")):
                    fail(f"a tool could decide or edit: {name}")

            flows = payload(await s.call_tool("list_genflows", {}))
            if flows[0]["params"][0]["name"] != "version":
                fail(f"the genflow's parameter is not listed: {flows}")

            run = payload(await s.call_tool(
                "start_run", {"genflow": "release-gate", "params": {"version": "2.4.0"}}))
            run_id = run["run_id"]
            if run["status"] != "waiting" or run["waiting_gates"] != ["go-no-go"]:
                fail(f"the run does not wait at its gate: {run}")
            if run["params"] != {"version": "2.4.0"}:
                fail(f"the parameter did not reach the run: {run['params']}")

            report = payload(await s.call_tool(
                "read_document", {"run": run_id, "path": "readiness.md"}))
            if "docs/releases/2.4.0.md" not in report["text"]:
                fail("the readiness report does not cite the release's notes")

            flags = payload(await s.call_tool("read_flags", {"run": run_id}))
            if not flags or not flags[0]["flags"]:
                fail(f"no review flags: {flags}")

            gate = payload(await s.call_tool("gate_status", {"run": run_id}))
            if gate[0]["approvers"] != ["release-owner@example.com"]:
                fail(f"the gate does not say who decides: {gate}")

            # Every way to try to decide is refused.
            attempts = [
                ("decide", {"run": run_id, "gate": "go-no-go", "verdict": "go"}),
                ("approve", {"run": run_id}),
                ("show_run", {"run": run_id, "verdict": "go"}),
                ("gate_status", {"run": run_id, "gate": "go-no-go", "decision": "go"}),
                ("send_decision_link", {"run": run_id, "gate": "go-no-go", "approver": "agent-owner@example.com"}),
            ]
            for name, args in attempts:
                try:
                    result = await s.call_tool(name, args)
                except Exception:  # a protocol error: refused, as it should be
                    continue
                if not result.is_error:
                    fail(f"{name} {args} was accepted: {result.content}")

            after = payload(await s.call_tool("show_run", {"run": run_id}))
            if after["status"] != "waiting" or after["decisions"]:
                fail(f"the gate moved: {after['status']}, {after['decisions']}")
            return run_id


def main():
    fleet, example = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        workspace = os.path.join(tmp, "ws")
        shutil.copytree(example, workspace)
        with open(os.path.join(workspace, ".fleet", "config.yaml"), "w") as f:
            f.write(CONFIG)
        run_id = asyncio.run(asyncio.wait_for(session(fleet, workspace), timeout=120))
        shown = subprocess.run(
            [fleet, "-C", workspace, "show", run_id, "--json"],
            capture_output=True, text=True, check=True, timeout=60,
            env={k: v for k, v in os.environ.items() if k != "FLEET_CONFIG"},
        )
        run = json.loads(shown.stdout)
        if run["status"] != "waiting" or run["decisions"]:
            fail(f"fleet show: {run['status']}, {run['decisions']}")
    print("mcp agent session: ok (initialised, listed 9 tools, started a run with a parameter, "
          "read the report and the flags, could not decide)")


if __name__ == "__main__":
    main()
