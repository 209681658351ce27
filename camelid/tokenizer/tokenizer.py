"""`Tokenizer`: llama.cpp-identical tokenize/detokenize from GGUF metadata (BPE "gpt2" and SPM "llama")."""

from __future__ import annotations

from typing import Any

from camelid.tokenizer.bpe import BPEModel, byte_level_encode
from camelid.tokenizer.special import SpecialSplitter
from camelid.tokenizer.spm import SPMModel
from camelid.tokenizer.vocab import ATTR_BYTE, ATTR_CONTROL, ATTR_UNKNOWN, ATTR_USER_DEFINED, BPE, SPM, Vocab


class Tokenizer:
    """Tokenizer of one model, built from its GGUF metadata dict (see `from_metadata`).

    `encode(text, add_bos=True)` follows llama.cpp's ``add_special``: BOS is prepended (and EOS appended) only
    when the model's metadata asks for it (`add_bos` / `add_eos`), so it is safe to always pass True.
    `special=True` parses control tokens written in the text ("<|im_end|>" -> one id); with False they are
    tokenized as plain text (user-defined tokens are matched either way, like llama.cpp).
    """

    def __init__(self, vocab: Vocab) -> None:
        self.vocab = vocab
        self.vocab_size: int = vocab.n_tokens
        self.bos_id: int | None = vocab.special["bos"]
        self.eos_id: int | None = vocab.special["eos"]
        self.eot_id: int | None = vocab.special["eot"]
        self.eom_id: int | None = vocab.special["eom"]
        self.unk_id: int | None = vocab.special["unk"]
        self.pad_id: int | None = vocab.special["pad"]
        self.add_bos: bool = vocab.add_bos
        self.add_eos: bool = vocab.add_eos
        self.eog_ids: set[int] = set(vocab.eog_ids)
        self._splitter = SpecialSplitter(vocab)
        if vocab.kind == BPE:
            assert vocab.pre is not None
            self._bpe = BPEModel(vocab.merges, vocab.token_to_id, vocab.pre.ignore_merges)
        else:
            self._spm = SPMModel(vocab.token_to_id, vocab.scores, vocab.byte_ids, vocab.special["unk"])

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> Tokenizer:
        """Build from GGUF metadata; raises `camelid.errors.UnsupportedModel` for unknown model/pre types."""
        return cls(Vocab.from_metadata(metadata))

    def __repr__(self) -> str:
        pre = f", pre={self.vocab.pre.name!r}" if self.vocab.pre else ""
        return f"Tokenizer({self.vocab.kind}{pre}, vocab_size={self.vocab_size})"

    # -- encoding ---------------------------------------------------------------------------------------------

    def encode(self, text: str, add_bos: bool = False, special: bool = False) -> list[int]:
        """Token ids of `text`, exactly as llama.cpp's ``llama_tokenize(text, add_special=add_bos,
        parse_special=special)``."""
        text = _valid_utf8(text)
        vocab = self.vocab
        fragments = self._splitter.split(text, special)
        out: list[int] = []
        if vocab.kind == SPM:
            if add_bos and vocab.add_bos:
                out.append(vocab.special["bos"])  # type: ignore[arg-type]
            prev_special = True  # the first raw fragment gets the space prefix too
            for frag in fragments:
                if isinstance(frag, int):
                    out.append(frag)
                    prev_special = True
                    continue
                if vocab.add_space_prefix and prev_special:
                    frag = " " + frag
                out.extend(self._spm.encode(frag.replace(" ", "\u2581")))
                prev_special = False
        else:
            if add_bos and vocab.add_bos:
                out.append(vocab.special["bos"])  # type: ignore[arg-type]
            pre, bpe = vocab.pre, self._bpe
            assert pre is not None
            for frag in fragments:
                if isinstance(frag, int):
                    out.append(frag)
                    continue
                for word in pre.split(frag):
                    out.extend(bpe.encode_word(byte_level_encode(word)))
        if add_bos and vocab.add_eos:
            out.append(vocab.special["eos"])  # type: ignore[arg-type]
        return out

    # -- decoding ---------------------------------------------------------------------------------------------

    def token_bytes(self, id: int) -> bytes:
        """Raw bytes token `id` contributes to output: byte-level BPE decoded, SPM "▁" -> space, ``<0xNN>`` ->
        that byte; b"" for control and unknown tokens."""
        return self.vocab.piece(id, special=False)

    def piece(self, id: int, special: bool = False) -> bytes:
        """Like `token_bytes`, but control/unknown tokens render their text when `special` is true."""
        return self.vocab.piece(id, special)

    def decode_bytes(self, ids: list[int], skip_special: bool = True) -> bytes:
        """llama.cpp ``llama_detokenize(remove_special=False, unparse_special=not skip_special)`` as bytes."""
        raw = bytearray()
        first = True
        for tid in ids:
            piece = self.vocab.piece(int(tid), not skip_special)
            if first and self.vocab.add_space_prefix and piece[:1] == b" ":
                piece = piece[1:]  # the space SPM put in front of the first word
            first = False
            raw += piece
        return clean_spaces(bytes(raw)) if self.vocab.clean_spaces else bytes(raw)

    def decode(self, ids: list[int], skip_special: bool = True) -> str:
        """Text of `ids` like llama.cpp's detokenize; control tokens are not rendered when `skip_special`.
        Invalid UTF-8 (e.g. half of a character) becomes U+FFFD."""
        return self.decode_bytes(ids, skip_special).decode("utf-8", errors="replace")

    # -- introspection ----------------------------------------------------------------------------------------

    def token_text(self, id: int) -> str:
        """The vocabulary entry of `id` as stored in the GGUF (e.g. "Ġthe", "▁the", "<0x0A>")."""
        return self.vocab.texts[id]

    def is_control(self, id: int) -> bool:
        return bool(self.vocab.attrs[id] & (ATTR_CONTROL | ATTR_UNKNOWN))

    def is_user_defined(self, id: int) -> bool:
        return bool(self.vocab.attrs[id] & ATTR_USER_DEFINED)

    def is_byte(self, id: int) -> bool:
        return bool(self.vocab.attrs[id] & ATTR_BYTE)

    @property
    def clean_spaces(self) -> bool:
        return self.vocab.clean_spaces

    @property
    def add_space_prefix(self) -> bool:
        return self.vocab.add_space_prefix


def _valid_utf8(text: str) -> str:
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:  # lone surrogates: what llama.cpp would see after a lossy conversion
        return text.encode("utf-8", "replace").decode("utf-8")


def clean_spaces(text: bytes) -> bytes:
    """llama.cpp's ``clean_spaces`` passes over detokenized bytes (BPE vocabularies of the GPT-2 lineage):
    drop the space in " ?", " !", " .", " ,"; turn " ' " into "'"; drop the space in " 's", " 'm", " 're", " 've"."""
    if len(text) < 2 or b" " not in text:
        return text
    s = bytearray(text)
    # pass 1: " ?", " !", " .", " ,"
    out = bytearray(s[:1])
    for i in range(1, len(s)):
        if s[i - 1] == 0x20 and s[i] in b"?!.,":
            out.pop()
        out.append(s[i])
    s = out
    # pass 2: a lone apostrophe between spaces loses both spaces
    out = bytearray(s[:1])
    i = 1
    while i < len(s):
        x = s[i]
        if x == 0x27 and i + 1 < len(s) and s[i - 1] == 0x20 and s[i + 1] == 0x20:
            out.pop()
            s[i + 1] = 0  # llama.cpp blanks the next space (it is skipped and no longer counts as a space)
            out.append(x)
            i += 2
            continue
        out.append(x)
        i += 1
    s = out
    # pass 3: contractions
    out = bytearray(s[:1])
    n = len(s)
    for i in range(1, n):
        x = s[i]
        if s[i - 1] == 0x20 and x == 0x27 and i + 1 < n:
            x1 = s[i + 1]
            if x1 in b"sm" or i + 2 < n and (x1, s[i + 2]) in ((0x72, 0x65), (0x76, 0x65)):
                out.pop()
        out.append(x)
    return bytes(out)
