"""Byte-level BPE (tokenizer.ggml.model == "gpt2"): GPT-2 byte<->unicode tables and llama.cpp's merge loop.

The merge loop follows `llm_tokenizer_bpe_session::tokenize`: symbols are the characters of the byte-encoded
pre-token, the adjacent pair with the lowest merge rank is merged first (leftmost on ties), one merge at a time.
A symbol that is not in the vocabulary at the end falls back to its single ASCII characters (other bytes are
dropped, as in llama.cpp). Results are cached per pre-token because real text repeats words a lot.
"""

from __future__ import annotations

import heapq
from typing import Protocol


def _byte_to_unicode() -> list[str]:
    """GPT-2's reversible byte -> printable character table."""
    keep = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table = [""] * 256
    for b in keep:
        table[b] = chr(b)
    extra = 0
    for b in range(256):
        if not table[b]:
            table[b] = chr(256 + extra)
            extra += 1
    return table


BYTE_TO_CHAR: list[str] = _byte_to_unicode()
CHAR_TO_BYTE: dict[str, int] = {c: b for b, c in enumerate(BYTE_TO_CHAR)}
_ENCODE_TABLE = {b: c for b, c in enumerate(BYTE_TO_CHAR)}


def byte_level_encode(text: str) -> str:
    """UTF-8 bytes of `text`, each mapped to its GPT-2 printable character."""
    return text.encode("utf-8", "replace").decode("latin-1").translate(_ENCODE_TABLE)


def byte_level_decode(token_text: str) -> bytes:
    """Inverse of `byte_level_encode` for one token (llama.cpp `llama_decode_text`).

    Characters outside the 256-entry table are rendered the way llama.cpp renders them:
    ``[UNK_BYTE_0x<utf8 hex>`` followed by the whole token text and ``]``.
    """
    out = bytearray()
    for ch in token_text:
        b = CHAR_TO_BYTE.get(ch)
        if b is not None:
            out.append(b)
        else:
            raw = ch.encode("utf-8", "surrogateescape")
            out += b"[UNK_BYTE_0x" + raw.hex().encode() + token_text.encode("utf-8", "surrogateescape") + b"]"
    return bytes(out)


class Ranks(Protocol):
    """Merge ranks by pair (camelid.tokenizer.vocab.MergeRanks)."""

    def get(self, pair: tuple[str, str], default: int | None = None) -> int | None: ...


class BPEModel:
    """Merges one byte-encoded pre-token at a time into token ids."""

    _CACHE_LIMIT = 100_000

    def __init__(self, ranks: Ranks, token_to_id: dict[str, int],
                 ignore_merges: bool = False) -> None:
        self.ranks = ranks
        self.token_to_id = token_to_id
        self.ignore_merges = ignore_merges
        self._cache: dict[str, tuple[int, ...]] = {}

    def encode_word(self, word: str) -> tuple[int, ...]:
        """Token ids for one pre-token that is already byte-level encoded."""
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        if self.ignore_merges and word in self.token_to_id:
            ids: tuple[int, ...] = (self.token_to_id[word],)
        else:
            ids = self._ids(self._merge(word))
        if len(self._cache) >= self._CACHE_LIMIT:
            self._cache.clear()
        self._cache[word] = ids
        return ids

    def _merge(self, word: str) -> list[str]:
        syms = list(word)
        n = len(syms)
        if n < 2:
            return syms
        ranks = self.ranks
        nxt = list(range(1, n + 1))
        nxt[-1] = -1
        prev = list(range(-1, n - 1))
        heap: list[tuple[int, int, int, str]] = []
        for i in range(n - 1):
            r = ranks.get((syms[i], syms[i + 1]))
            if r is not None:
                heap.append((r, i, i + 1, syms[i] + syms[i + 1]))
        heapq.heapify(heap)
        while heap:
            _rank, left, right, text = heapq.heappop(heap)
            ls, rs = syms[left], syms[right]
            if not ls or not rs or ls + rs != text:
                continue  # outdated: one side was merged since this pair was queued
            syms[left], syms[right] = text, ""
            after = nxt[right]
            nxt[left] = after
            if after != -1:
                prev[after] = left
            before = prev[left]
            if before != -1:
                r = ranks.get((syms[before], text))
                if r is not None:
                    heapq.heappush(heap, (r, before, left, syms[before] + text))
            if after != -1:
                r = ranks.get((text, syms[after]))
                if r is not None:
                    heapq.heappush(heap, (r, left, after, text + syms[after]))
        return [s for s in syms if s]

    def _ids(self, symbols: list[str]) -> tuple[int, ...]:
        out: list[int] = []
        vocab = self.token_to_id
        for sym in symbols:
            tid = vocab.get(sym)
            if tid is not None:
                out.append(tid)
                continue
            for ch in sym:  # llama.cpp looks up each UTF-8 byte alone: only ASCII can hit
                if ord(ch) < 0x80:
                    byte_id = vocab.get(ch)
                    if byte_id is not None:
                        out.append(byte_id)
        return tuple(out)
