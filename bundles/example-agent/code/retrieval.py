"""A tiny term index: maps lowercase terms to document ids (see index/index.json).

As a site's tool (`search_kb` in the site's tool endpoints), the call's arguments
{"query": string, "limit": integer} give {"hits": [{"title": ..., "text": ...}]}:
  retrieval.py --tool INDEX_DIR        one call: arguments on stdin, result on stdout
  retrieval.py --http PORT INDEX_DIR   a service on 127.0.0.1:PORT: POST the arguments
"""
import json
import os
import re
import sys

_WORD = re.compile(r"\w+", re.UNICODE)


class Index:
    def __init__(self, base, documents, terms):
        self.base = base
        self.documents = documents
        self.terms = terms

    @classmethod
    def load(cls, base):
        with open(os.path.join(base, "index.json"), encoding="utf-8") as f:
            data = json.load(f)
        if data.get("version") != 1:
            raise ValueError("unsupported index version")
        return cls(base, data["documents"], data["terms"])

    def _terms_of(self, text):
        for word in _WORD.findall(text.lower()):
            # Crude stemming: "refunds" -> "refund", "passwords" -> "password".
            yield word
            if word.endswith("s"):
                yield word[:-1]

    def search(self, query, limit=2):
        """Return up to `limit` (title, text) pairs, best match first."""
        scores = {}
        for term in set(self._terms_of(query)):
            for doc_id in self.terms.get(term, []):
                scores[doc_id] = scores.get(doc_id, 0) + 1
        ranked = sorted(scores, key=lambda d: (-scores[d], d))[:limit]
        hits = []
        for doc_id in ranked:
            doc = self.documents[doc_id]
            with open(os.path.join(self.base, doc["path"]), encoding="utf-8") as f:
                hits.append((doc["title"], f.read()))
        return hits


def search_tool(index, args):
    """The result of one call, or None when the arguments are not {"query", "limit"?}."""
    if not isinstance(args, dict):
        return None
    query, limit = args.get("query"), args.get("limit", 2)
    if not isinstance(query, str) or not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 20:
        return None
    return {"hits": [{"title": t, "text": x} for t, x in index.search(query, limit=limit)]}


USAGE = "usage: retrieval.py --tool INDEX_DIR < arguments.json | retrieval.py --http PORT INDEX_DIR"
SHAPE = 'the arguments must be {"query": string, "limit": 1 to 20}'


def tool_main(argv):
    if len(argv) == 2 and argv[0] == "--tool":
        try:
            result = search_tool(Index.load(argv[1]), json.load(sys.stdin))
        except ValueError:
            result = None
        if result is None:
            print(SHAPE, file=sys.stderr)
            return 2
        json.dump(result, sys.stdout, sort_keys=True)
        return 0
    if len(argv) == 3 and argv[0] == "--http":
        import http.server
        index = Index.load(argv[2])

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    result = search_tool(index, json.loads(self.rfile.read(length))) if 0 < length <= 65536 else None
                except ValueError:
                    result = None
                data = json.dumps(result if result is not None else {"error": SHAPE}, sort_keys=True).encode()
                self.send_response(200 if result is not None else 400)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, fmt, *args):
                pass

        http.server.ThreadingHTTPServer(("127.0.0.1", int(argv[1])), Handler).serve_forever()
        return 0
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(tool_main(sys.argv[1:]))
