#!/usr/bin/env python3
"""The example agent's eval suite, run by `airlock pack` (airlock.yaml `eval:`).

Asks the agent in ../code every question of cases.json and checks that it answers from the
expected source document (or declines when the source is null). Prints the result airlock
reads on stdout: {"score": passed/total, "cases": [{"id": ..., "passed": ...}, ...]}.
Diagnostics go to stderr. Standard library only; no network.
"""
import json
import os
import sys

sys.dont_write_bytecode = True  # the release directory must not change while it is packed
here = os.path.dirname(os.path.abspath(__file__))
root = os.environ.get("AIRLOCK_RELEASE_DIR", os.path.dirname(here))
sys.path.insert(0, os.path.join(root, "code"))
import agent  # noqa: E402


def main():
    with open(os.path.join(here, "cases.json"), encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    system, tools, index = agent.load_release(root)
    results = []
    for case in cases:
        reply = agent.answer(case["question"], tools, index, system=system)
        if case["source"] is None:
            passed = "(source:" not in reply
        else:
            passed = reply.rstrip().endswith("(source: %s)" % case["source"])
        if not passed:
            print("case %s failed: %r" % (case["id"], reply[-80:]), file=sys.stderr)
        results.append({"id": case["id"], "passed": passed})
    score = sum(r["passed"] for r in results) / len(results) if results else 0.0
    json.dump({"score": score, "cases": results}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
