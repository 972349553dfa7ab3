#!/usr/bin/env python3
"""Example support agent: answers questions by retrieval over the bundled index.

Usage: agent.py [--root RELEASE_DIR] [QUESTION...]
With no question, reads questions from stdin, one per line.
"""
import argparse
import json
import os
import sys

sys.dont_write_bytecode = True  # keep the release directory unchanged
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from retrieval import Index  # noqa: E402


def load_release(root):
    with open(os.path.join(root, "prompts", "system.md"), encoding="utf-8") as f:
        system = f.read()
    with open(os.path.join(root, "tools", "tools.json"), encoding="utf-8") as f:
        tools = {t["name"]: t for t in json.load(f)["tools"]}
    index = Index.load(os.path.join(root, "index"))
    return system, tools, index


def answer(question, tools, index, limit=2):
    if "search_kb" not in tools:
        return "I cannot search the knowledge base in this release."
    hits = index.search(question, limit=limit)
    if not hits:
        return ("I could not find this in our documentation. "
                "Shall I open a ticket for a human agent?")
    title, text = hits[0]
    body = " ".join(line for line in text.splitlines() if not line.startswith("#"))
    return f"{body.strip()}\n(source: {title})"


def main(argv=None):
    default_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default=default_root, help="release directory")
    p.add_argument("question", nargs="*")
    args = p.parse_args(argv)

    _system, tools, index = load_release(args.root)
    questions = [" ".join(args.question)] if args.question else sys.stdin
    for q in questions:
        q = q.strip()
        if q in ("quit", "exit"):
            break
        if not q:
            continue
        print(answer(q, tools, index))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
