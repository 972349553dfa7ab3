#!/usr/bin/env python3
"""Checks and the report of `make bench-routing` (scripts/bench-routing.sh). Standard library only.

  check.py journal JOURNAL                    assignments per release in serve's task journal
  check.py compare MAP REFERENCE              tasks of MAP ("task release" lines, from the wrk
                                              script) whose release differs from REFERENCE
                                              (another map, or a tasks.log journal)
  check.py sample URL NAME JOURNAL N SEED     N tasks of the journal, one request each through
                                              serve (urllib): answered by the journal's release?
  check.py status URL TOKEN_FILE NAME SECONDS OUT
                                              waits until serve answers /_airlock/status with the
                                              current and the canary's runtimes ready; writes it
  check.py ports STATUS_JSON NAME SS_OUTPUT   "incumbent_release port candidate_release port"
                                              from /_airlock/status and `ss -ltnpH`
  check.py span MAP TASKS THREADS PREFIX      the largest k such that the first k tasks of every
                                              wrk thread's slice are in MAP (all assigned)
  check.py report WORK                        the report; exit 1 when a hard target fails
"""
import bisect
import json
import math
from fractions import Fraction
import os
import random
import re
import statistics
import sys
import urllib.error
import urllib.request


def read_journal(path):
    """task -> release of every assignment line (`a <task> <release> <canary> <step> <time>`)."""
    out = {}
    with open(path, encoding="ascii") as f:
        for line in f:
            p = line.split()
            if len(p) == 6 and p[0] == "a":
                out.setdefault(p[1], p[2])
    return out


def read_map(path):
    if os.path.basename(path) == "tasks.log":
        return read_journal(path)
    out = {}
    with open(path, encoding="ascii") as f:
        for line in f:
            p = line.split()
            if len(p) == 2:
                out[p[0]] = p[1]
    return out


def read_kv(path):
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                out[k] = v
    return out


def cmd_journal(path):
    j = read_journal(path)
    counts = {}
    for r in j.values():
        counts[r] = counts.get(r, 0) + 1
    print(f"journal_assigned={len(j)}")
    for r, c in sorted(counts.items()):
        print(f"journal.{r}={c}")


def cmd_compare(map_path, ref_path):
    m, ref = read_map(map_path), read_map(ref_path)
    differ = sum(1 for t, r in m.items() if t in ref and ref[t] != r)
    missing = sum(1 for t in m if t not in ref)
    print(f"compared={len(m)} differ={differ} missing={missing}")


def cmd_sample(url, name, journal, n, seed):
    j = read_journal(journal)
    tasks = sorted(j)
    rng = random.Random(int(seed))
    sample = rng.sample(tasks, min(int(n), len(tasks)))
    differ = errors = 0
    first = None
    for t in sample:
        req = urllib.request.Request(f"{url}/{name}/v1/answer", headers={"X-Task-Id": t})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                header = r.headers.get("X-Airlock-Release")
                body = json.loads(r.read())
        except (urllib.error.URLError, OSError, ValueError) as e:
            errors += 1
            first = first or f"{t}: {e}"
            continue
        if header != j[t] or body.get("release") != j[t] or body.get("task") != t:
            differ += 1
            first = first or f"{t}: journal {j[t]}, header {header}, body {body}"
    print(f"sampled={len(sample)} differ={differ} errors={errors}")
    if first:
        print(f"first={first}")


def cmd_span(map_path, tasks, threads, prefix="t"):
    m = read_map(map_path)
    tasks, threads = int(tasks), int(threads)
    slice_ = tasks // threads
    span = tasks
    for i in range(threads):
        lo = i * slice_
        n = slice_ if i < threads - 1 else tasks - lo
        k = 0
        while k < n and f"{prefix}{lo + k}" in m:
            k += 1
        span = min(span, k)
    print(span)


def cmd_status(url, token_file, name, seconds, out):
    import time

    deadline = time.monotonic() + float(seconds)
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            token = open(token_file, encoding="ascii").read().strip()
            req = urllib.request.Request(f"{url}/_airlock/status", headers={"Authorization": "Bearer " + token})
            with urllib.request.urlopen(req, timeout=5) as r:
                body = r.read()
            s = json.loads(body)["names"][name]
            cand = (s.get("canary") or {}).get("runtime") or {}
            if s.get("ready") and cand.get("ready"):
                open(out, "wb").write(body)
                return
            last = f"current ready {s.get('ready')}, candidate ready {cand.get('ready')}, canary {(s.get('canary') or {}).get('status')}"
        except (OSError, ValueError, KeyError) as e:
            last = str(e)
        time.sleep(0.1)
    sys.exit(f"serve did not get both runtimes ready in {seconds} s: {last}")


def cmd_ports(status_path, name, ss_path):
    status = json.load(open(status_path, encoding="utf-8"))["names"][name]
    listening = {}
    for line in open(ss_path, encoding="utf-8"):
        m = re.search(r"127\.0\.0\.1:(\d+)\s.*pid=(\d+),", line)
        if m:
            listening.setdefault(int(m.group(2)), int(m.group(1)))
    cand = (status.get("canary") or {}).get("runtime") or {}
    out = []
    for rt in (status, cand):
        if not rt.get("ready") or rt.get("pid") not in listening:
            sys.exit(f"runtime {rt.get('release')} is not ready or not listening (pid {rt.get('pid')})")
        out += [rt["release"], str(listening[rt["pid"]])]
    print(" ".join(out))


# ---- report ----------------------------------------------------------------------------------


def spread(xs, fmt="{:.3f}"):
    if not xs:
        return "n/a"
    return " / ".join(fmt.format(x) for x in (min(xs), statistics.median(xs), max(xs)))


class Histograms:
    """wrk's latency histograms of one target, one per round ("<µs> <count>" lines), pooled over
    any multiset of rounds without adding them up again: the pooled percentile is found by a
    binary search over the values, each round answering "how many at or under v" from its
    cumulative counts."""

    def __init__(self, paths):
        self.rounds = []  # (values, cumulative counts)
        grid = set()
        for path in paths:
            vals, cum, total = [], [], 0
            for line in open(path, encoding="utf-8"):
                p = line.split()
                if len(p) == 2 and int(p[1]) > 0:
                    total += int(p[1])
                    vals.append(int(p[0]))
                    cum.append(total)
            self.rounds.append((vals, cum))
            grid.update(vals)
        self.grid = sorted(grid)

    def _at_or_under(self, i, v):
        vals, cum = self.rounds[i]
        k = bisect.bisect_right(vals, v)
        return cum[k - 1] if k else 0

    def percentile(self, p, picks=None):
        """The p-th percentile (ms) of the rounds `picks` (indices, repeats allowed) pooled."""
        picks = range(len(self.rounds)) if picks is None else picks
        n = sum(self.rounds[i][1][-1] for i in picks if self.rounds[i][1])
        if n == 0:
            return float("nan")
        rank = max(1, math.ceil(Fraction(str(p)) * n / 100))
        lo, hi = 0, len(self.grid) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if sum(self._at_or_under(i, self.grid[mid]) for i in picks) >= rank:
                hi = mid
            else:
                lo = mid + 1
        return self.grid[lo] / 1000.0


def pooled_ratio(hists, a, b, p, resamples=2000, seed=11):
    """Added latency at percentile p of routers a and b (pooled over the rounds, minus direct's,
    pooled the same way) and their ratio a / b, with a 95% bootstrap interval: the rounds drawn
    again with replacement, the same draw for every target (a round is a stretch of time on
    this machine)."""

    def ratio(picks):
        d = hists["direct"].percentile(p, picks)
        x, y = hists[a].percentile(p, picks) - d, hists[b].percentile(p, picks) - d
        # Undefined when the baseline adds nothing measurable, or a pick has no samples (NaN).
        return x, y, (x / y if y > 0 and not math.isnan(x) else None)

    x, y, r = ratio(None)
    rng = random.Random(seed)
    n = len(hists["direct"].rounds)
    draws = []
    for _ in range(resamples):
        picks = [rng.randrange(n) for _ in range(n)]
        q = ratio(picks)[2]
        draws.append(q if q is not None else float("inf"))
    draws.sort()
    lo = draws[int(0.025 * (resamples - 1))]
    hi = draws[int(0.975 * (resamples - 1))]
    return x, y, r, lo, hi


def cmd_report(work):
    facts = read_kv(os.path.join(work, "facts.kv"))
    runs = os.path.join(work, "runs")
    kv = {f[:-3]: read_kv(os.path.join(runs, f)) for f in sorted(os.listdir(runs)) if f.endswith(".kv")}
    order = [l for l in open(os.path.join(work, "order.txt"), encoding="utf-8").read().split()]
    tasks = int(facts["tasks"])
    weight = float(facts["weight"])
    incumbent, candidate = facts["incumbent"], facts["candidate"]
    hard = []  # (target, value, verdict)
    out = []
    w = out.append

    w("# airlock serve routing benchmark")
    w("")
    for k in ("date", "command", "machine", "load_before", "load_after", "airlock", "serve_threads", "haproxy", "wrk", "setup", "task_ids", "orders"):
        if k in facts:
            w(f"- {k.replace('_', ' ')}: {facts[k]}")
    w("")

    def num(d, k, cast=float):
        return cast(d.get(k, "0") or 0)

    # Correctness: stickiness, split, restart, errors.
    serve_runs = [l for l in order if l.endswith("-serve")]
    hap_runs = [l for l in order if l.endswith("-haproxy")]
    direct_runs = [l for l in order if l.endswith("-direct")]

    def sum_of(labels, key):
        return sum(num(kv[l], key, int) for l in labels if l in kv)

    sv_viol = sum_of(serve_runs, "violations")
    sv_mis = sum_of(serve_runs, "mismatches")
    sv_journal_differ = int(facts.get("serve_journal_differ", "0"))
    sv_journal_compared = int(facts.get("serve_journal_compared", "0"))
    sv_errors = sum_of(serve_runs, "errors") + sum_of(serve_runs, "bad")
    sv_requests = sum_of(serve_runs, "requests")
    hp_viol = sum_of(hap_runs, "violations")
    hp_mis = sum_of(hap_runs, "mismatches")
    hp_map_differ = int(facts.get("haproxy_map_differ", "0"))
    hp_errors = sum_of(hap_runs, "errors") + sum_of(hap_runs, "bad")
    hp_requests = sum_of(hap_runs, "requests")
    dr_errors = sum_of(direct_runs, "errors") + sum_of(direct_runs, "bad")

    a_sv, a_hp = kv.get("assign-serve", {}), kv.get("assign-haproxy", {})

    def share(d):
        seen = num(d, "tasks_seen", int)
        cand = num(d, "tasks." + candidate, int)
        return seen, cand, (100.0 * cand / seen if seen else float("nan"))

    sv_seen, sv_cand, sv_share = share(a_sv)
    hp_seen, hp_cand, hp_share = share(a_hp)
    j_total = int(facts.get("journal_assigned", "0"))
    j_cand = int(facts.get("journal." + candidate, "0"))
    j_share = 100.0 * j_cand / j_total if j_total else float("nan")
    sample_n, sample_differ, sample_err = (int(facts.get(k, "0")) for k in ("restart_sampled", "restart_differ", "restart_errors"))
    rss_kib = int(facts.get("rss_after_assign_kib", "0"))

    def verdict(ok):
        return "not established" if ok is None else "PASS" if ok else "FAIL"

    stick_ok = sv_viol == 0 and sv_mis == 0 and sv_journal_differ == 0 and sv_journal_compared > 0
    assigned_ok = sv_seen == tasks and j_total == tasks
    split_ok = abs(sv_share - weight) <= 0.5 and abs(j_share - weight) <= 0.5
    restart_ok = sample_n > 0 and sample_differ == 0 and sample_err == 0
    # Every reading holds the whole book (after the first pass, after the restart's replay, at
    # the end of the run): the target holds only if each is under 64 MiB. The target is about a
    # book of every task: with fewer it is shown only when over.
    readings = [int(facts.get(k, "0") or 0) for k in ("rss_after_assign_kib", "rss_after_restart_kib", "rss_end_kib")]
    over = max(readings) >= 64 * 1024
    mem_ok = (min(readings) > 0 and not over) if j_total == tasks else (False if over else None)
    errors_ok = sv_errors == 0
    hard += [
        ("every task assigned in the first pass", assigned_ok),
        ("stickiness via serve", stick_ok),
        ("candidate share", split_ok),
        ("sticky across a restart", restart_ok),
        (f"memory at {tasks:,} tasks", mem_ok),
        ("no failed request via serve", errors_ok),
    ]

    w("## Hard targets")
    w("")
    w("| target | airlock serve | haproxy (same run, for reference) | target | verdict |")
    w("|---|---|---|---|---|")
    w(
        f"| every task assigned in the first pass ({facts.get('passes')} requests a task, at most {facts.get('pass_timeout')} s) | "
        f"{j_total:,} in the journal, {sv_seen:,} answered, in {a_sv.get('seconds')} s | {hp_seen:,} answered in {a_hp.get('seconds')} s | "
        f"{tasks:,} | {verdict(assigned_ok)} |"
    )
    w(
        f"| stickiness: responses from another release than the task's earlier ones | {sv_viol} of {sv_requests} responses; "
        f"header names another release than answered: {sv_mis}; tasks whose release differs from the journal: {sv_journal_differ} of "
        f"{sv_journal_compared} compared | {hp_viol} of {hp_requests}; header mismatches {hp_mis}; tasks differing from its first pass: "
        f"{hp_map_differ} | 0 | {verdict(stick_ok)} |"
    )
    w(
        f"| candidate share of distinct tasks ({tasks:,} tasks, weight {weight:g}%) | {sv_cand} of {sv_seen} = {sv_share:.3f}% "
        f"(journal: {j_cand} of {j_total} = {j_share:.3f}%) | {hp_cand} of {hp_seen} = {hp_share:.3f}% | {weight:g}% +- 0.5 points "
        f"(serve and its journal) | {verdict(split_ok)} |"
    )
    w(
        f"| sticky across a restart (SIGTERM, start again; sampled tasks of the first pass) | {sample_differ} of {sample_n} "
        f"answered by another release than the journal's ({sample_err} errors); both runtimes ready "
        f"{facts.get('restart_ready_seconds')} s after the start | | 0 | {verdict(restart_ok)} |"
    )
    w(
        f"| VmRSS of serve with {j_total:,} tasks assigned: after the first pass / after the restart's replay / at the end of the run | "
        f"{readings[0] / 1024:.1f} / {readings[1] / 1024:.1f} / {readings[2] / 1024:.1f} MiB (peak VmHWM of the restarted process "
        f"{int(facts.get('hwm_end_kib', '0')) / 1024:.1f} MiB) | | each < 64 MiB | {verdict(mem_ok)} |"
    )
    w(
        f"| failed requests (socket errors, timeouts, non-200) | {sv_errors} | {hp_errors} (direct: {dr_errors}) | 0 | {verdict(errors_ok)} |"
    )
    w("")

    # Latency.
    rounds = sorted({int(l.split("-")[1]) for l in order if l.startswith("lat-")})

    def lat(target, key):
        return [num(kv[f"lat-{r}-{target}"], key) / 1000.0 for r in rounds if f"lat-{r}-{target}" in kv]

    pace = f"each connection pausing {facts['delay_ms']} ms between a response and its next request" if facts.get("delay_ms", "0") != "0" else "back to back"
    w(f"## Latency at -t{facts['threads']} -c{facts['conc']}, {pace}, {facts['seconds']} s a run, {len(rounds)} rounds (the targets in the orders of a balanced Latin square)")
    w("")
    span = int(facts.get("span", "0") or 0)
    per_thread = tasks // int(facts["threads"])
    if 0 < span < per_thread:
        w(
            f"(The first pass ran out of time: these runs cycle over the first {span:,} tasks of each wrk thread's {per_thread:,}, "
            "all assigned, so serve only looks them up.)"
        )
        w("")
    w("ms, min / median / max over the rounds:")
    w("")
    w("| target | p50 | p99 | p99.9 | requests/s | router CPU µs per request |")
    w("|---|---:|---:|---:|---:|---:|")
    for t, label in (("direct", "direct to the 1.0.0 backend"), ("serve", "via airlock serve"), ("haproxy", "via haproxy")):
        rps = [num(kv[f"lat-{r}-{t}"], "rps") for r in rounds if f"lat-{r}-{t}" in kv]
        cpu = [num(kv[f"lat-{r}-{t}"], "cpu_us_per_request") for r in rounds if "cpu_us_per_request" in kv.get(f"lat-{r}-{t}", {})]
        w(
            f"| {label} | {spread(lat(t, 'p50_us'))} | {spread(lat(t, 'p99_us'))} | {spread(lat(t, 'p999_us'))} | {spread(rps, '{:.0f}')} | "
            f"{spread(cpu, '{:.1f}') if cpu else ''} |"
        )
    w("")
    verdict_text = "not established"
    w("Added latency (via - direct, same round) and the ratio airlock / haproxy per round:")
    w("")
    w("| round | serve added p50 | haproxy added p50 | ratio p50 | serve added p99 | haproxy added p99 | ratio p99 |")
    w("|---|---:|---:|---:|---:|---:|---:|")
    ratios = {"p50_us": [], "p99_us": []}
    added = {("serve", "p50_us"): [], ("haproxy", "p50_us"): [], ("serve", "p99_us"): [], ("haproxy", "p99_us"): []}
    for r in rounds:
        row = [str(r)]
        for key in ("p50_us", "p99_us"):
            d = num(kv[f"lat-{r}-direct"], key) / 1000.0
            s = num(kv[f"lat-{r}-serve"], key) / 1000.0 - d
            h = num(kv[f"lat-{r}-haproxy"], key) / 1000.0 - d
            added[("serve", key)].append(s)
            added[("haproxy", key)].append(h)
            # When haproxy's figure is at or under the direct one, the round's direct run was
            # disturbed (or haproxy adds nothing measurable): the ratio is undefined there.
            if h > 0:
                ratios[key].append(s / h)
                row += [f"{s:.3f}", f"{h:.3f}", f"{s / h:.2f}"]
            else:
                row += [f"{s:.3f}", f"{h:.3f}", "undefined"]
        w("| " + " | ".join(row) + " |")
    w(
        f"| min / median / max | {spread(added[('serve', 'p50_us')])} | {spread(added[('haproxy', 'p50_us')])} | {spread(ratios['p50_us'], '{:.2f}')} | "
        f"{spread(added[('serve', 'p99_us')])} | {spread(added[('haproxy', 'p99_us')])} | {spread(ratios['p99_us'], '{:.2f}')} |"
    )
    w("")
    p99r = ratios["p99_us"]
    others = [num(kv[f"lat-{r}-{t}"], "others_cpu_pct") for r in rounds for t in ("direct", "serve", "haproxy", "haproxy2") if f"lat-{r}-{t}" in kv]
    busy = bool(others) and max(others) > 10
    undefined = len(rounds) - len(p99r)
    if others:
        w(
            f"Other processes used {spread(others, '{:.1f}')} % of the machine (min / median / max over these runs; /proc/stat "
            "minus the benchmark's own processes)"
            + (": more than 10% in some run, so the tails are the scheduler's, and the ratio gets no verdict." if busy else ".")
        )
        w("")
    w(
        f"Per-round p99 ratios {spread(p99r, '{:.2f}')} (min / median / max"
        + (f" of the {len(p99r)} rounds where it is defined" if undefined else "")
        + "): one round's p99 comes from a few seconds of one target, so these spread with the machine (the A/A control below "
        "shows how far)."
    )
    w("")
    control = [r for r in rounds if f"lat-{r}-haproxy2" in kv]
    targets = ["direct", "serve", "haproxy"] + (["haproxy2"] if control else [])
    pooled = bool(rounds) and all(os.path.exists(os.path.join(runs, f"lat-{r}-{t}.hist")) for r in rounds for t in targets)
    if pooled:
        hists = {t: Histograms([os.path.join(runs, f"lat-{r}-{t}.hist") for r in rounds]) for t in targets}
        w(
            f"### Pooled over the {len(rounds)} rounds (every sample of every round of a target: wrk's histograms added up, "
            "with the samples wrk adds for coordinated omission)"
        )
        w("")
        w("| target | samples | p50 ms | p90 ms | p99 ms | p99.9 ms |")
        w("|---|---:|---:|---:|---:|---:|")
        names = {"direct": "direct to the 1.0.0 backend", "serve": "via airlock serve", "haproxy": "via haproxy", "haproxy2": "via the second haproxy (control)"}
        for t in targets:
            n = sum(c[-1] for _, c in hists[t].rounds if c)
            w(f"| {names[t]} | {n:,} | " + " | ".join(f"{hists[t].percentile(q):.3f}" for q in (50, 90, 99, 99.9)) + " |")
        w("")
        # With the control, serve is compared with each of the two identical HAProxy routers:
        # the A/A control shows that one of them can measure apart from the other by more than
        # the interval says, so a verdict holds only against both.
        baselines = [("haproxy", "haproxy")] + ([("haproxy2", "the second haproxy")] if "haproxy2" in hists else [])
        w("| added latency, pooled (via - direct) | serve ms | baseline | baseline ms | ratio serve / baseline | 95% interval (bootstrap over the rounds) |")
        w("|---|---:|---|---:|---:|---:|")
        est = {}
        for q in (50, 99):
            for b, label in baselines:
                x, y, r, lo, hi = pooled_ratio(hists, "serve", b, q)
                est[(q, b)] = (r, lo, hi)
                w(f"| p{q} | {x:.3f} | {label} | {y:.3f} | {f'{r:.2f}' if r is not None else 'undefined'} | {lo:.2f} - {hi:.2f} |")
        w("")
        p99 = [est[(99, b)] for b, _ in baselines]
        if all(r is not None for r, _, _ in p99) and len(rounds) >= 8 and not busy:
            if all(hi < 2 for _, _, hi in p99):
                verdict_text = "PASS"
            elif all(lo > 2 for _, lo, _ in p99):
                verdict_text = "FAIL"
        shown = "; ".join(
            f"against {label} {f'{r:.2f}' if r is not None else 'undefined'} ({lo:.2f} - {hi:.2f})" for (b, label), (r, lo, hi) in zip(baselines, p99)
        )
        w(
            f"Target: airlock's p99 added latency within 2x haproxy's. Pooled ratio and 95% interval {shown}: **{verdict_text}**"
            f"{' (machine busy)' if busy else ''} (PASS when every interval's upper end is under 2, FAIL when every lower end is over "
            "2, otherwise, with fewer than 8 rounds or with other processes over 10% of the machine, not established; reported, "
            "never the exit status)."
        )
        w("")
    else:
        if len(p99r) >= min(3, len(rounds)) and not busy:
            if max(p99r) < 2:
                verdict_text = "PASS"
            elif min(p99r) > 2:
                verdict_text = "FAIL"
        w(
            f"Target: airlock's p99 added latency within 2x haproxy's, judged per round (no histograms in this work folder): "
            f"**{verdict_text}** (PASS when the largest ratio is under 2, FAIL when the smallest is over 2)."
        )
        w("")
    if control:
        # The A/A control: the same router twice, measured as serve and haproxy are. Its ratio is
        # what this method measures between two identical routers.
        w(
            "A/A control: a second haproxy with the same configuration and its own first pass, measured in every round like the "
            "others"
            + (
                f" (its first pass sent {facts['control_map_differ']} tasks elsewhere than the first's):"
                if "control_map_differ" in facts
                else ":"
            )
        )
        w("")
        w("| round | haproxy added p99 | second haproxy added p99 | ratio second / first |")
        w("|---|---:|---:|---:|")
        aa = []
        for r in control:
            d = num(kv[f"lat-{r}-direct"], "p99_us") / 1000.0
            h = num(kv[f"lat-{r}-haproxy"], "p99_us") / 1000.0 - d
            h2 = num(kv[f"lat-{r}-haproxy2"], "p99_us") / 1000.0 - d
            if h > 0 and h2 > 0:
                aa.append(h2 / h)
                w(f"| {r} | {h:.3f} | {h2:.3f} | {h2 / h:.2f} |")
            else:
                w(f"| {r} | {h:.3f} | {h2:.3f} | undefined |")
        w("")
        if aa:
            factor = max(max(aa), 1 / min(aa))
            w(
                f"Two identical routers, round by round: p99 ratios {spread(aa, '{:.2f}')} (min / median / max); up to "
                f"{factor:.2f}x apart in one round."
            )
            w("")
        if pooled:
            x, y, r, lo, hi = pooled_ratio(hists, "haproxy2", "haproxy", 99)
            w(
                f"Pooled over the rounds: added p99 {y:.3f} ms (first) and {x:.3f} ms (second), ratio "
                f"{f'{r:.2f}' if r is not None else 'undefined'}, 95% interval {lo:.2f} - {hi:.2f}: how closely this method tells "
                "two identical routers apart here"
                + (
                    " (the interval misses 1: by chance, as the bootstrap over rounds understates how far the pooled p99s of "
                    "identical routers drift apart between runs on this machine (docs/benchmarks.md), or a bias of the method; "
                    "hence the verdict against both routers)."
                    if r is not None and (lo > 1 or hi < 1)
                    else "."
                )
            )
            w("")

    # Throughput.
    prounds = sorted({int(l.split("-")[1]) for l in order if l.startswith("peak-")})
    if prounds:
        w(f"## Peak throughput at -t{facts['threads']} -c{facts['peak_conc']}, {facts['peak_seconds']} s a run, {len(prounds)} rounds, no response parsing")
        w("")
        w("| target | requests/s min / median / max | p50 ms | p99 ms | router CPU µs per request | errors |")
        w("|---|---:|---:|---:|---:|---:|")
        med = {}
        for t, label in (("direct", "direct to the 1.0.0 backend"), ("serve", "via airlock serve"), ("haproxy", "via haproxy")):
            ks = [kv[f"peak-{r}-{t}"] for r in prounds if f"peak-{r}-{t}" in kv]
            rps = [num(k, "rps") for k in ks]
            med[t] = statistics.median(rps) if rps else float("nan")
            w(
                f"| {label} | {spread(rps, '{:.0f}')} | {spread([num(k, 'p50_us') / 1000 for k in ks])} | "
                f"{spread([num(k, 'p99_us') / 1000 for k in ks])} | "
                f"{spread([num(k, 'cpu_us_per_request') for k in ks], '{:.1f}') if t != 'direct' else ''} | {sum(num(k, 'errors', int) for k in ks)} |"
            )
        per = [num(kv[f"peak-{r}-serve"], "rps") / num(kv[f"peak-{r}-haproxy"], "rps") for r in prounds]
        w("")
        w(f"serve / haproxy requests per second, per round: {spread(per, '{:.2f}')} (min / median / max)")
        pothers = [num(kv[f"peak-{r}-{t}"], "others_cpu_pct") for r in prounds for t in ("direct", "serve", "haproxy") if f"peak-{r}-{t}" in kv]
        if pothers:
            w("")
            w(f"Other processes used {spread(pothers, '{:.1f}')} % of the machine during these runs (min / median / max).")
        w("")

    # The first passes.
    w("## The first passes (every task's first requests: assignment, journal write)")
    w("")
    w("| pass | requests | seconds | requests/s | p50 ms | p99 ms | max ms | router CPU µs per request |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label in ("assign-serve", "assign-haproxy", "assign-haproxy2"):
        if label in kv:
            d = kv[label]
            w(
                f"| {label} | {d.get('requests')} | {d.get('seconds')} | {num(d, 'rps'):.0f} | {num(d, 'p50_us') / 1000:.3f} | "
                f"{num(d, 'p99_us') / 1000:.3f} | {num(d, 'max_us') / 1000:.3f} | {d.get('cpu_us_per_request', '')} |"
            )
    w("")
    prog = []
    ppath = os.path.join(work, "progress.txt")
    if os.path.exists(ppath):
        for line in open(ppath, encoding="utf-8"):
            p = line.split()
            if len(p) == 2:
                prog.append((float(p[0]), int(p[1])))
    if len(prog) >= 2:
        band = max(1, tasks // 10)
        cells = []
        for lo in range(0, tasks, band):
            hi = lo + band

            def at(count):
                # when the journal reached `count` lines (linear between samples), or None
                for (t0, c0), (t1, c1) in zip(prog, prog[1:]):
                    if c0 <= count <= c1 and c1 > c0:
                        return t0 + (t1 - t0) * (count - c0) / (c1 - c0)
                return None

            t_lo, t_hi = at(lo), at(hi)
            cells.append((f"{lo / 1000:g}k-{hi / 1000:g}k", f"{band / (t_hi - t_lo):.0f}" if t_lo is not None and t_hi is not None and t_hi > t_lo else "n/a"))
        w("First pass via serve, assignments per second as the book grows (the journal's length, sampled every second):")
        w("")
        w("| " + " | ".join(c[0] for c in cells) + " |")
        w("|" + "---:|" * len(cells))
        w("| " + " | ".join(c[1] for c in cells) + " |")
        w("")
    w("## Every run, in run order")
    w("")
    w("| run | requests | requests/s | p50 ms | p99 ms | p99.9 ms | max ms | errors | bad | violations | others' CPU % |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for l in order:
        d = kv.get(l)
        if d is None:
            w(f"| {l} | missing | | | | | | | | | |")
            continue
        w(
            f"| {l} | {d.get('requests')} | {num(d, 'rps'):.0f} | {num(d, 'p50_us') / 1000:.3f} | {num(d, 'p99_us') / 1000:.3f} | "
            f"{num(d, 'p999_us') / 1000:.3f} | {num(d, 'max_us') / 1000:.3f} | {d.get('errors')} | {d.get('bad')} | {d.get('violations')} | "
            f"{d.get('others_cpu_pct', '')} |"
        )
    w("")
    w("## Verdicts")
    w("")
    for name, ok in hard:
        w(f"- {name}: {verdict(ok)}")
    w(f"- p99 added latency within 2x haproxy's: {verdict_text} (not part of the exit status)")
    print("\n".join(out))
    return 0 if all(ok for _, ok in hard) else 1


def main():
    a = sys.argv[1:]
    if not a:
        sys.exit(__doc__)
    cmd, args = a[0], a[1:]
    if cmd == "journal":
        cmd_journal(*args)
    elif cmd == "compare":
        cmd_compare(*args)
    elif cmd == "sample":
        cmd_sample(*args)
    elif cmd == "span":
        cmd_span(*args)
    elif cmd == "status":
        cmd_status(*args)
    elif cmd == "ports":
        cmd_ports(*args)
    elif cmd == "report":
        sys.exit(cmd_report(*args))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
