"""SentencePiece-style tokenization (tokenizer.ggml.model == "llama") as llama.cpp's `llm_tokenizer_spm_session`.

The text (spaces already escaped to U+2581 by the caller) starts as one symbol per character. Every adjacent
pair whose concatenation is a vocabulary token is queued with that token's score; the best score is merged
first (leftmost on ties), and merges repeat until the queue is empty. Final symbols that are not tokens fall
back to byte tokens ``<0xNN>`` for each UTF-8 byte.
"""

from __future__ import annotations

import heapq


class SPMModel:
    """Score-driven merging over a vocabulary; stateless apart from a small per-fragment cache."""

    _CACHE_LIMIT = 20_000

    def __init__(self, token_to_id: dict[str, int], scores: list[float], byte_ids: list[int | None],
                 unk_id: int | None) -> None:
        self.token_to_id = token_to_id
        self.scores = scores
        self.byte_ids = byte_ids
        self.unk_id = unk_id
        self._cache: dict[str, tuple[int, ...]] = {}

    def encode(self, text: str) -> tuple[int, ...]:
        """Token ids for `text` (already whitespace-escaped)."""
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        ids = tuple(self._ids(self._merge(text)))
        if len(text) <= 256:
            if len(self._cache) >= self._CACHE_LIMIT:
                self._cache.clear()
            self._cache[text] = ids
        return ids

    def _merge(self, text: str) -> list[str]:
        syms = list(text)
        n = len(syms)
        if n < 2:
            return syms
        vocab, scores = self.token_to_id, self.scores
        nxt = list(range(1, n + 1))
        nxt[-1] = -1
        prev = list(range(-1, n - 1))
        heap: list[tuple[float, int, int, int]] = []

        def bigram(left: int, right: int) -> tuple[float, int, int, int] | None:
            """Queue entry for a pair whose concatenation is a token: best score first, then leftmost."""
            tid = vocab.get(syms[left] + syms[right])
            return None if tid is None else (-scores[tid], left, right, len(syms[left]) + len(syms[right]))

        for i in range(n - 1):
            entry = bigram(i, i + 1)
            if entry is not None:
                heap.append(entry)
        heapq.heapify(heap)

        while heap:
            _score, left, right, size = heapq.heappop(heap)
            ls, rs = syms[left], syms[right]
            if not ls or not rs or len(ls) + len(rs) != size:
                continue  # one side changed since this pair was queued
            syms[left], syms[right] = ls + rs, ""
            after = nxt[right]
            nxt[left] = after
            if after != -1:
                prev[after] = left
            for pair in ((prev[left], left), (left, after)):
                if pair[0] != -1 and pair[1] != -1 and (entry := bigram(*pair)) is not None:
                    heapq.heappush(heap, entry)
        return [s for s in syms if s]

    def _ids(self, symbols: list[str]) -> list[int]:
        out: list[int] = []
        vocab = self.token_to_id
        for sym in symbols:
            tid = vocab.get(sym)
            if tid is not None:
                out.append(tid)
                continue
            for b in sym.encode("utf-8", "surrogateescape"):
                byte_id = self.byte_ids[b]
                if byte_id is None:
                    if self.unk_id is None:
                        raise KeyError(f"vocabulary has no byte token for 0x{b:02X}")
                    byte_id = self.unk_id
                out.append(byte_id)
        return out
