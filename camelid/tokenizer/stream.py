"""Streaming detokenization: text pieces that never split a UTF-8 character.

The concatenation of every `add()` result plus `flush()` equals `Tokenizer.decode(all ids)`. Two things make
that non-trivial: a character's bytes can be spread over several tokens (byte-level BPE, SPM byte fallback),
and llama.cpp's space clean-up for GPT-2-style vocabularies (" ." -> ".", " 's" -> "'s") looks up to three
bytes past a space. So bytes are held back while they end in an incomplete UTF-8 sequence, and (for those
vocabularies) while a space sits within the last three bytes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from camelid.tokenizer.tokenizer import clean_spaces

if TYPE_CHECKING:
    from camelid.tokenizer.tokenizer import Tokenizer


def _complete_prefix(buf: bytes | bytearray) -> int:
    """Length of `buf` without a trailing, still completable UTF-8 sequence."""
    n = len(buf)
    for back in range(1, min(4, n) + 1):
        b = buf[n - back]
        if b < 0x80:
            return n
        if b >= 0xC0:  # lead byte: how long should its sequence be?
            need = 2 if b < 0xE0 else 3 if b < 0xF0 else 4 if b < 0xF8 else 1
            return n - back if back < need else n
    return n  # only continuation bytes: nothing later can complete them


class IncrementalDecoder:
    """Feed token ids one at a time; get back the newly completed text."""

    def __init__(self, tokenizer: Tokenizer, skip_special: bool = True) -> None:
        self.tokenizer = tokenizer
        self.skip_special = skip_special
        self._pending = bytearray()
        self._first = True
        self._clean = tokenizer.vocab.clean_spaces
        self._strip_first = tokenizer.vocab.add_space_prefix

    def add(self, id: int) -> str:
        """Append token `id`; return the text that is now final (possibly "")."""
        piece = self.tokenizer.piece(int(id), not self.skip_special)
        if self._first:
            self._first = False
            if self._strip_first and piece[:1] == b" ":
                piece = piece[1:]
        if not piece:
            return ""
        self._pending += piece
        return self._emit(final=False)

    def flush(self) -> str:
        """Return everything still held back (call at the end of generation)."""
        return self._emit(final=True)

    def reset(self) -> None:
        """Forget all state, as if newly created."""
        self._pending.clear()
        self._first = True

    def _emit(self, final: bool) -> str:
        buf = self._pending
        cut = len(buf) if final else _complete_prefix(buf)
        if self._clean and not final:
            # a clean-up pattern starts at a space and spans at most 4 bytes: cut where none can straddle
            while cut > 0 and (0x20 in buf[max(0, cut - 3):cut] or (cut < len(buf) and 0x80 <= buf[cut] < 0xC0)):
                cut -= 1
        if cut <= 0:
            return ""
        chunk = bytes(buf[:cut])
        del buf[:cut]
        if self._clean:
            chunk = clean_spaces(chunk)
        return chunk.decode("utf-8", errors="replace")
