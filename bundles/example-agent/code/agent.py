#!/usr/bin/env python3
"""Example support agent: answers questions by retrieval over the bundled index.

Usage: agent.py [--root RELEASE_DIR] [QUESTION...]
       agent.py --serve
With no question, reads questions from stdin, one per line. With --serve, answers over HTTP
(Python's standard library only) on 127.0.0.1:$PORT, or on the unix socket $AIRLOCK_SOCKET:
  GET  /healthz     200 once the index is loaded
  POST /v1/answer   {"question": "..."} -> {"answer": "..."} (the answer alone: under serve,
                    X-Airlock-Release names the release, and an answer that named it would
                    differ between releases that decide the same, in a replay)
Under `airlock serve` ($AIRLOCK_TOOLS_URL set) it searches through the site's tool gateway:
POST $AIRLOCK_TOOLS_URL/search_kb {"query": ..., "limit": ...} with the task's X-Task-Id.
"""
import argparse
import http.server
import json
import os
import socketserver
import sys
import urllib.error
import urllib.request

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


def handoff_topics(system):
    """The document titles the system prompt says to offer a human agent for: lines such as
    `- Offer a human agent for questions about Refunds.`"""
    prefix = "- Offer a human agent for questions about "
    return {line[len(prefix):].strip().rstrip(".") for line in system.splitlines() if line.startswith(prefix)}


class ToolError(Exception):
    pass


def call_tool(tools_url, task, tool, arguments):
    """Calls `tool` through the site's tool gateway; its result, or ToolError."""
    req = urllib.request.Request(tools_url + "/" + tool, data=json.dumps(arguments).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "X-Task-Id": task})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.load(r)["result"]
    except urllib.error.HTTPError as e:
        try:
            message = json.load(e)["error"]
        except (ValueError, KeyError, TypeError):
            message = "no reason given"
        raise ToolError(f"{tool} answered {e.code}: {message}")
    except (OSError, ValueError, KeyError) as e:
        raise ToolError(f"{tool} failed: {e}")


def answer(question, tools, index, limit=2, system="", search=None):
    """`search(question, limit)` returns the hits; the local index by default."""
    if "search_kb" not in tools:
        return "I cannot search the knowledge base in this release."
    hits = (search or index.search)(question, limit)
    if not hits:
        return ("I could not find this in our documentation. "
                "Shall I open a ticket for a human agent?")
    title, text = hits[0]
    body = " ".join(line for line in text.splitlines() if not line.startswith("#"))
    if title in handoff_topics(system):
        body = body.strip() + " If you prefer, a human agent can take over from here."
    return f"{body.strip()}\n(source: {title})"


MAX_BODY = 64 << 10


def serve(root, system, tools, index):
    release = os.path.basename(os.path.dirname(os.path.abspath(root)))
    tools_url = os.environ.get("AIRLOCK_TOOLS_URL")

    class Handler(http.server.BaseHTTPRequestHandler):
        def reply(self, status, body):
            data = json.dumps(body, sort_keys=True).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/healthz":
                self.reply(200, {"ok": True, "release": release})
            else:
                self.reply(404, {"error": "no such path"})

        def do_POST(self):
            if self.path != "/v1/answer":
                return self.reply(404, {"error": "no such path"})
            length = int(self.headers.get("Content-Length") or 0)
            if length <= 0 or length > MAX_BODY:
                return self.reply(400, {"error": "a JSON body of at most 64 KiB is required"})
            try:
                question = json.loads(self.rfile.read(length))["question"]
                if not isinstance(question, str):
                    raise ValueError
            except (ValueError, KeyError, TypeError):
                return self.reply(400, {"error": 'the body must be {"question": string}'})
            search = None
            if tools_url:
                task = self.headers.get("X-Task-Id") or ""

                def search(q, limit):
                    result = call_tool(tools_url, task, "search_kb", {"query": q, "limit": limit})
                    return [(h["title"], h["text"]) for h in result["hits"]]
            try:
                text = answer(question, tools, index, system=system, search=search)
            except ToolError as e:
                return self.reply(502, {"error": f"the knowledge base cannot be searched: {e}"})
            self.reply(200, {"answer": text})

        def address_string(self):
            return "local"

        def log_message(self, fmt, *args):
            pass

    socket_path = os.environ.get("AIRLOCK_SOCKET")
    if socket_path:
        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True
        server = Server(socket_path, Handler)
    else:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
    server.serve_forever()


def main(argv=None):
    default_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default=default_root, help="release directory")
    p.add_argument("--serve", action="store_true", help="answer over HTTP on $PORT or $AIRLOCK_SOCKET")
    p.add_argument("question", nargs="*")
    args = p.parse_args(argv)

    system, tools, index = load_release(args.root)
    if args.serve:
        serve(args.root, system, tools, index)
        return 0
    questions = [" ".join(args.question)] if args.question else sys.stdin
    for q in questions:
        q = q.strip()
        if q in ("quit", "exit"):
            break
        if not q:
            continue
        print(answer(q, tools, index, system=system))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
