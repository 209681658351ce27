"""Splitting text on special tokens before the model tokenizer runs (llama.cpp `tokenizer_st_partition`).

llama.cpp walks its special-token cache (control, user-defined and unknown tokens, longest text first) and,
for each token in that order, cuts every remaining raw-text fragment at each occurrence (leftmost first,
non-overlapping). With ``parse_special=False`` control and unknown tokens are skipped, but user-defined
tokens are still cut out (as Hugging Face does). A token with LSTRIP/RSTRIP eats the ASCII whitespace
(C ``isspace``) on that side of it.

Only tokens whose text can occur in the input are visited: a token is a candidate when its first two
characters (or its only character) occur in the text, which keeps Gemma's ~6,400 special tokens cheap.
"""

from __future__ import annotations

from camelid.tokenizer.vocab import ATTR_CONTROL, ATTR_LSTRIP, ATTR_RSTRIP, ATTR_UNKNOWN, Vocab

_C_SPACE = " \t\n\v\f\r"

Fragment = str | int  # raw text, or a token id already decided


class SpecialSplitter:
    """Precomputed index over a vocabulary's special tokens."""

    def __init__(self, vocab: Vocab) -> None:
        self.vocab = vocab
        self._order = {tid: n for n, tid in enumerate(vocab.special_cache)}
        self._by_prefix: dict[str, list[int]] = {}
        for tid in vocab.special_cache:
            text = vocab.texts[tid]
            self._by_prefix.setdefault(text[:2], []).append(tid)

    def _candidates(self, text: str, parse_special: bool) -> list[int]:
        found: list[int] = []
        by_prefix = self._by_prefix
        if len(by_prefix) < 64:
            keys = [k for k in by_prefix if k in text]
        else:
            keys = [text[i:i + 2] for i in range(len(text))]
            keys += list(text)
            keys = [k for k in set(keys) if k in by_prefix]
        for key in keys:
            found.extend(by_prefix[key])
        attrs, texts = self.vocab.attrs, self.vocab.texts
        skip = 0 if parse_special else (ATTR_CONTROL | ATTR_UNKNOWN)
        found = [t for t in found if not attrs[t] & skip and texts[t] in text]
        found.sort(key=self._order.__getitem__)
        return found

    def split(self, text: str, parse_special: bool) -> list[Fragment]:
        """`text` as a list of raw-text fragments (str) and special token ids (int), in order."""
        if not text:
            return []
        fragments: list[Fragment] = [text]
        attrs, texts = self.vocab.attrs, self.vocab.texts
        for tid in self._candidates(text, parse_special):
            needle = texts[tid]
            attr = attrs[tid]
            out: list[Fragment] = []
            for frag in fragments:
                if isinstance(frag, int) or needle not in frag:
                    out.append(frag)
                    continue
                rest = frag
                while True:
                    pos = rest.find(needle)
                    if pos < 0:
                        if rest:
                            out.append(rest)
                        break
                    left = rest[:pos]
                    if attr & ATTR_LSTRIP:
                        left = left.rstrip(_C_SPACE)
                    if left:
                        out.append(left)
                    out.append(tid)
                    rest = rest[pos + len(needle):]
                    if attr & ATTR_RSTRIP:
                        rest = rest.lstrip(_C_SPACE)
            fragments = out
        return fragments
