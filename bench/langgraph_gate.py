"""The release gate as a LangGraph graph, the baseline `bench/run` times
Fleet's CLI against: readiness -> risk_review -> go_no_go (an interrupt,
resumed by a second process) -> announce, checkpointed in SQLite by
langgraph-checkpoint-sqlite, as LangGraph's docs recommend for a local
human-in-the-loop flow.

    python langgraph_gate.py DB WORKSPACE start THREAD   # runs to the gate
    python langgraph_gate.py DB WORKSPACE approve THREAD # decides Go, announces

The steps do honest but model-free work comparable to Fleet's builtin
analyst: the report reads the same example corpus (release notes,
runbooks, migrations) and lists what it finds; the review flags open items;
the announcement is written to a file. No model is called on either side.
"""

import pathlib
import sqlite3
import sys
from typing import TypedDict

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt


class State(TypedDict, total=False):
    report: str
    review: str
    verdict: str
    announced: str


def workspace() -> pathlib.Path:
    return pathlib.Path(sys.argv[2])


def readiness(state: State) -> State:
    root = workspace()
    lines = ["# Release readiness", ""]
    for pattern in ("docs/releases/*.md", "docs/runbooks/*.md", "migrations/*.sql"):
        for path in sorted(root.glob(pattern)):
            text = path.read_text()
            lines.append(f"- `{path.relative_to(root)}`: {len(text.splitlines())} lines")
            lines += [f"  - {l.strip()}" for l in text.splitlines() if "[ ]" in l]
    return {"report": "\n".join(lines)}


def risk_review(state: State) -> State:
    flags = [l for l in state["report"].splitlines() if "[ ]" in l]
    return {"review": "\n".join(["# Risk review", ""] + [f"- high: {f.strip()}" for f in flags])}


def go_no_go(state: State) -> State:
    verdict = interrupt({"question": "Ship the release?", "report": state["report"]})
    return {"verdict": verdict}


def announce(state: State) -> State:
    if state["verdict"] != "go":
        return {}
    out = workspace() / "announced.md"
    out.write_text(f"Released.\n\n{state['report']}\n")
    return {"announced": str(out)}


def graph(saver: SqliteSaver):
    g = StateGraph(State)
    g.add_node("readiness", readiness)
    g.add_node("risk_review", risk_review)
    g.add_node("go_no_go", go_no_go)
    g.add_node("announce", announce)
    g.add_edge(START, "readiness")
    g.add_edge("readiness", "risk_review")
    g.add_edge("risk_review", "go_no_go")
    g.add_edge("go_no_go", "announce")
    g.add_edge("announce", END)
    return g.compile(checkpointer=saver)


def main() -> int:
    db, _, action, thread = sys.argv[1:5]
    conn = sqlite3.connect(db, check_same_thread=False)
    app = graph(SqliteSaver(conn))
    config = {"configurable": {"thread_id": thread}}
    if action == "start":
        app.invoke({}, config)
        if not app.get_state(config).next == ("go_no_go",):
            print("the graph did not stop at the gate", file=sys.stderr)
            return 1
    elif action == "approve":
        app.invoke(Command(resume="go"), config)
        if not app.get_state(config).values.get("announced"):
            print("nothing was announced", file=sys.stderr)
            return 1
    else:
        print(f"unknown action {action}", file=sys.stderr)
        return 2
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
