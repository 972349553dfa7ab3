"""A tiny term index: maps lowercase terms to document ids (see index/index.json)."""
import json
import os
import re

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
