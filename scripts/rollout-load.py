#!/usr/bin/env python3
"""Sends agent tasks through `airlock serve` and reports each task's outcome, as a site's
task runner would (docs/rollout.md, "HTTP API"). Standard library only; loopback only.

Each task is one POST /NAME/v1/answer with its id in X-Task-Id, graded the way the example
agent's eval grades (the answer must end with the expected source, or decline when there is
none); the outcome POSTed to /_airlock/outcomes/NAME says whether it succeeded, what it cost
(by the answer's length, as tokens would) and whether it needed a person (the answer hands the
customer to a human agent). Prints, per release, the tasks it served and their success rate.

  rollout-load.py --url http://127.0.0.1:8470 --token-file ROOT/.serve-token --name NAME \
      --cases eval/cases.json --tasks 2000 [--prefix t] [--threads 8] [--until-canary-ends]
      [--fail-release RELEASE]   report every task RELEASE serves as failed (a drill)
"""
import argparse
import json
import random
import sys
import threading
import time
import urllib.error
import urllib.request


def call(url, method="GET", body=None, headers=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, method=method, data=data)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--token-file", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--cases", required=True)
    p.add_argument("--tasks", type=int, default=1000)
    p.add_argument("--prefix", default="task")
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--until-canary-ends", action="store_true")
    p.add_argument("--fail-release")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args()

    token = open(a.token_file, encoding="utf-8").read().strip()
    auth = {"Authorization": "Bearer " + token}
    cases = json.load(open(a.cases, encoding="utf-8"))["cases"]
    rng = random.Random(a.seed)
    plan = [(f"{a.prefix}-{i}", rng.choice(cases), rng.random()) for i in range(a.tasks)]
    lock = threading.Lock()
    served = {}
    stop = threading.Event()
    errors = []
    next_task = [0]

    def canary_status():
        status, _, body = call(f"{a.url}/_airlock/status", headers=auth)
        if status != 200:
            return None
        return (json.loads(body)["names"].get(a.name) or {}).get("canary")

    def worker():
        while not stop.is_set():
            with lock:
                if next_task[0] >= len(plan):
                    return
                task, case, luck = plan[next_task[0]]
                next_task[0] += 1
            status, headers, body = call(f"{a.url}/{a.name}/v1/answer", "POST", {"question": case["question"]}, {"X-Task-Id": task})
            release = headers.get("X-Airlock-Release") if headers else None
            if status != 200:
                with lock:
                    errors.append(f"{task}: HTTP {status} {body[:200]!r}")
                continue
            reply = json.loads(body)["answer"].rstrip()
            if case["source"] is None:
                ok = "(source:" not in reply
            else:
                ok = reply.endswith("(source: %s)" % case["source"])
            ok = ok and luck > 0.05  # the world: 5% of tasks fail whatever the agent says
            if a.fail_release and release == a.fail_release:
                ok = False
            human = "human agent" in reply
            cost = round(0.002 + 0.00004 * len(reply.split()), 6)
            outcome = {"task_id": task, "success": ok, "cost": cost, "intervention": human}
            s, _, b = call(f"{a.url}/_airlock/outcomes/{a.name}", "POST", outcome, auth)
            with lock:
                r = served.setdefault(release, [0, 0, 0])
                r[0] += 1
                r[1] += ok
                r[2] += human
                if s != 200:
                    errors.append(f"{task}: outcome HTTP {s} {b[:200]!r}")

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(a.threads)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(0.2)
        if a.until_canary_ends:
            c = canary_status()
            if c is not None and c.get("status") not in ("running",):
                stop.set()
    for t in threads:
        t.join()
    total = sum(v[0] for v in served.values())
    for release, (n, ok, human) in sorted(served.items(), key=lambda kv: str(kv[0])):
        if not a.quiet:
            print(f"  {release}: {n} tasks, success {ok / n:.1%}, human agent {human / n:.1%}")
    print(json.dumps({"tasks": total, "served": {str(k): v[0] for k, v in served.items()}, "errors": len(errors)}))
    for e in errors[:5]:
        print("  error: " + e, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
