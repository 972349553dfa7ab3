#!/usr/bin/env python3
"""The report of scripts/bench-peers.sh: reads its results (TSV: shape, row, side, run, seconds
or bytes, peak KiB, CPU seconds) and prints markdown with the verdicts; exits 1 when a target is
not met (FAIL or not established)."""
import statistics
import sys

path, runs, first_shell, when, version, rauc, ostree = sys.argv[1:8]
runs = int(runs)
rows = [line.rstrip("\n").split("\t") for line in open(path) if line.strip()]
TARGETS = {("pack", "many"): 0.6, ("pack", "large"): 0.6, ("verify", "many"): 0.9, ("verify", "large"): 0.9,
           ("install", "many"): 1.0, ("install", "large"): 0.8}
PEERS = ["shell", "rauc", "ostree"]


def samples(shape, row, side):
    return {int(r[3]): (float(r[4]), int(r[5]), float(r[6])) for r in rows if r[0] == shape and r[1] == row and r[2] == side}


def verdict(ratios, target):
    if all(x <= target for x in ratios):
        return "PASS"
    if all(x > target for x in ratios):
        return "FAIL"
    return "not established"


shapes = []
for r in rows:
    if r[0] not in shapes and r[1] != "control":
        shapes.append(r[0])
out = [f"# Against the peers: {when}, airlock {version}, {rauc}, OSTree {ostree}, {runs} runs per side", ""]
verdicts = []
for shape in shapes:
    out += [f"## Shape: {shape}", "",
            "| row | side | s: min / median / max | CPU s (median) | peak RSS MiB | median / airlock's |",
            "|---|---|---|---|---|---|"]
    for row in ["pack", "verify", "install"]:
        med = {}
        for side in ["airlock"] + PEERS:
            s = samples(shape, row, side)
            if not s:
                continue
            t = [v[0] for v in s.values()]
            med[side] = statistics.median(t)
            cpu = statistics.median(v[2] for v in s.values())
            rss = max(v[1] for v in s.values()) / 1024
            rel = "" if side == "airlock" else f"{med[side] / med['airlock']:.2f}x"
            out.append(f"| {row} | {side} | {min(t):.2f} / {med[side]:.2f} / {max(t):.2f} | {cpu:.2f} | {rss:.1f} | {rel} |")
            if side == "airlock":
                verdicts.append((f"{shape}: peak RSS of airlock {row}", f"{rss:.1f} MiB (target < 64)", "PASS" if rss < 64 else "FAIL"))
        a, b = samples(shape, row, "airlock"), samples(shape, row, "shell")
        paired = [a[i][0] / b[i][0] for i in sorted(a) if i in b]
        target = TARGETS[(row, shape)] if (row, shape) in TARGETS else None
        best = min((p for p in PEERS if p in med), key=lambda p: med[p])
        line = (f"{shape}: {row}, airlock / shell: median {med['airlock'] / med['shell']:.2f}, per run "
                f"{min(paired):.2f} - {max(paired):.2f}; against the best peer ({best}): {med['airlock'] / med[best]:.2f}")
        if target is not None:
            verdicts.append((line, f"target <= {target}", verdict(paired, target)))
    out.append("")
    for drow, label in (("delta", "v2: 104 index documents rewritten"), ("delta-append", "v2-append: one line appended to a prompt")):
        sizes = {r[2]: int(float(r[4])) for r in rows if r[0] == shape and r[1] == drow}
        if not sizes:
            continue
        out += [f"| delta for {label} | bytes |", "|---|---|"] + [f"| {k} | {v:,} |" for k, v in sizes.items()] + [""]
        ratio = sizes["airlock"] / sizes["ostree"]
        line = (f"{shape}: {drow}, airlock / OSTree static delta: {ratio:.2f} (the changed files alone: "
                f"{sizes['changed-files'] / sizes['ostree']:.2f})")
        # The target is on its change (v2); the appended line is reported beside it.
        verdicts.append((line, "target <= 1.0" if drow == "delta" else "no target", ("PASS" if ratio <= 1.0 else "FAIL") if drow == "delta" else "INFO"))
control = [float(r[4]) for r in rows if r[1] == "control"]
if control and float(first_shell) > 0:
    out += [f"Control: the shell pack of the first shape took {float(first_shell):.2f} s in its first run and "
            f"{control[0]:.2f} s again at the end ({control[0] / float(first_shell):.2f}x): the machine's drift over the run.", ""]
out += ["## Verdicts", ""] + [f"- {line} ({target}): **{v}**" for line, target, v in verdicts]
print("\n".join(out))
# As airlock-bench: "not established" is not a failure; only a FAIL is.
sys.exit(1 if any(v == "FAIL" for _, _, v in verdicts) else 0)
