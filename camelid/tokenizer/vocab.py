"""The vocabulary as llama.cpp loads it from GGUF metadata: token texts, scores, per-token attributes,
special token ids, the end-of-generation set, and the bytes each token renders to.

Everything here mirrors llama.cpp's `llama_vocab::impl::load` (src/llama-vocab.cpp): defaults per tokenizer
model, metadata overrides, the text-based auto-detection of EOT/EOM/FIM tokens, "unused" control tokens,
the EOG list and its model-specific exceptions, and the per-model LSTRIP/RSTRIP attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import compress, repeat
from typing import Any

from camelid.errors import UnsupportedModel
from camelid.tokenizer.bpe import byte_level_decode
from camelid.tokenizer.pretokenize import PreTokenizer, resolve_pre

# token types stored in tokenizer.ggml.token_type
TYPE_UNDEFINED, TYPE_NORMAL, TYPE_UNKNOWN, TYPE_CONTROL, TYPE_USER_DEFINED, TYPE_UNUSED, TYPE_BYTE = range(7)

# llama_token_attr bits
ATTR_UNDEFINED = 0
ATTR_UNKNOWN = 1 << 0
ATTR_UNUSED = 1 << 1
ATTR_NORMAL = 1 << 2
ATTR_CONTROL = 1 << 3
ATTR_USER_DEFINED = 1 << 4
ATTR_BYTE = 1 << 5
ATTR_NORMALIZED = 1 << 6
ATTR_LSTRIP = 1 << 7
ATTR_RSTRIP = 1 << 8
ATTR_SINGLE_WORD = 1 << 9

_TYPE_TO_ATTR = {
    TYPE_UNKNOWN: ATTR_UNKNOWN, TYPE_UNUSED: ATTR_UNUSED, TYPE_NORMAL: ATTR_NORMAL, TYPE_CONTROL: ATTR_CONTROL,
    TYPE_USER_DEFINED: ATTR_USER_DEFINED, TYPE_BYTE: ATTR_BYTE, TYPE_UNDEFINED: ATTR_UNDEFINED,
}

SPM, BPE = "spm", "bpe"

# Texts llama.cpp recognises when the metadata does not name the token (first match wins).
_EOT_TEXTS = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>",
              "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>"}
_EOM_TEXTS = {"<|eom_id|>"}
_FIM_TEXTS = {
    "fim_pre": {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>",
                "<|code_prefix|>", "<|prefix|>"},
    "fim_suf": {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>",
                "<|code_suffix|>", "<|suffix|>"},
    "fim_mid": {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>",
                "<|code_middle|>", "<|middle|>"},
    "fim_pad": {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"},
    "fim_rep": {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"},
    "fim_sep": {"<|file_sep|>"},
}
_EOG_TEXTS = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>",
              "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]",
              "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
              "<｜end▁of▁sentence｜>", "[e~["}
_ALWAYS_RENDERED = ("<|channel|>", "<|message|>", "<|start|>", "<|constrain|>")  # gpt-oss

_SPECIAL_KEYS = {  # our name -> metadata key suffix (tokenizer.ggml.<suffix>)
    "bos": "bos_token_id", "eos": "eos_token_id", "eot": "eot_token_id", "eom": "eom_token_id",
    "unk": "unknown_token_id", "sep": "seperator_token_id", "pad": "padding_token_id", "mask": "mask_token_id",
    "fim_pre": "fim_pre_token_id", "fim_suf": "fim_suf_token_id", "fim_mid": "fim_mid_token_id",
    "fim_pad": "fim_pad_token_id", "fim_rep": "fim_rep_token_id", "fim_sep": "fim_sep_token_id",
}
_DEPRECATED_FIM_KEYS = {"fim_pre": "prefix_token_id", "fim_suf": "suffix_token_id", "fim_mid": "middle_token_id"}


@dataclass
class Vocab:
    """Token table plus llama.cpp's derived flags. Build with `Vocab.from_metadata`."""

    kind: str  # SPM or BPE
    texts: list[str]
    scores: list[float]
    attrs: list[int]
    token_to_id: dict[str, int]
    special: dict[str, int | None]
    add_bos: bool
    add_eos: bool
    add_space_prefix: bool
    clean_spaces: bool
    pre: PreTokenizer | None
    merges: MergeRanks = field(default_factory=lambda: MergeRanks([]))
    eog_ids: set[int] = field(default_factory=set)
    special_cache: list[int] = field(default_factory=list)  # control/user-defined/unknown ids, longest text first
    byte_ids: list[int | None] = field(default_factory=list)  # byte value -> token id (SPM byte fallback)
    _pieces: dict[tuple[int, bool], bytes] = field(default_factory=dict, repr=False)

    @property
    def n_tokens(self) -> int:
        return len(self.texts)

    @classmethod
    def from_metadata(cls, md: dict[str, Any]) -> Vocab:
        """Load the vocabulary like llama.cpp does; unsupported tokenizers raise `UnsupportedModel`."""
        model = md.get("tokenizer.ggml.model")
        if model is None:
            raise UnsupportedModel("model has no tokenizer (tokenizer.ggml.model is missing)")
        pre_name = md.get("tokenizer.ggml.pre")
        defaults: dict[str, int | None] = {k: None for k in _SPECIAL_KEYS}
        merges = MergeRanks([])
        pre: PreTokenizer | None = None
        if model == "llama":
            kind = SPM
            defaults.update(bos=1, eos=2, unk=0)
            add_space_prefix, clean_spaces, add_bos, add_eos = True, False, True, False
        elif model == "gpt2":
            kind = BPE
            raw_merges = md.get("tokenizer.ggml.merges")
            if raw_merges is None:
                raise UnsupportedModel("gpt2 tokenizer without tokenizer.ggml.merges")
            merges = MergeRanks(list(raw_merges))
            defaults.update(bos=11, eos=11)
            pre = resolve_pre(pre_name)  # raises UnsupportedModel for unknown names
            add_space_prefix, clean_spaces, add_bos, add_eos = False, pre.clean_spaces, pre.add_bos, False
            if pre.no_bos:
                defaults["bos"] = None
        else:
            raise UnsupportedModel(f"tokenizer model '{model}' is not supported (only 'gpt2' BPE and 'llama' SPM)")
        add_space_prefix = bool(md.get("tokenizer.ggml.add_space_prefix", add_space_prefix))

        texts = list(map(str, md.get("tokenizer.ggml.tokens") or []))  # C-level loops below: 262k tokens (Gemma)
        if not texts:
            raise UnsupportedModel("model has an empty tokenizer.ggml.tokens list")
        n = len(texts)
        raw_scores = md.get("tokenizer.ggml.scores")
        scores = list(map(float, raw_scores[:n])) if raw_scores is not None else [0.0] * n
        if len(scores) < n:
            raise UnsupportedModel(f"tokenizer.ggml.scores has {len(scores)} entries for {n} tokens")
        types = md.get("tokenizer.ggml.token_type")
        if types is not None and len(types) < n:
            raise UnsupportedModel(f"tokenizer.ggml.token_type has {len(types)} entries for {n} tokens")
        attrs = ([ATTR_NORMAL] * n if types is None
                 else list(map(_TYPE_TO_ATTR.get, map(int, types[:n]), repeat(ATTR_UNDEFINED))))
        if not all(texts):
            texts = [text or f"[EMPTY_{i}]" for i, text in enumerate(texts)]
        token_to_id = dict(zip(texts, range(n)))  # llama.cpp refuses duplicates; we keep the last one

        special = dict(defaults)
        for name, key in _SPECIAL_KEYS.items():
            if special[name] is not None and special[name] >= n:  # type: ignore[operator]
                special[name] = None
            keys = [key] + ([_DEPRECATED_FIM_KEYS[name]] if name in _DEPRECATED_FIM_KEYS else [])
            for k in keys:  # the deprecated FIM keys are read last and win, as in llama.cpp
                value = md.get(f"tokenizer.ggml.{k}")
                if value is not None and 0 <= int(value) < n:  # out-of-range ids keep the default
                    special[name] = int(value)
        add_bos = bool(md.get("tokenizer.ggml.add_bos_token", add_bos))
        add_eos = bool(md.get("tokenizer.ggml.add_eos_token", add_eos))
        if add_bos and special["bos"] is None:
            raise UnsupportedModel("tokenizer.ggml.add_bos_token is true, but no BOS token is set")
        if add_eos and special["eos"] is None:
            raise UnsupportedModel("tokenizer.ggml.add_eos_token is true, but no EOS token is set")

        vocab = cls(kind=kind, texts=texts, scores=scores, attrs=attrs, token_to_id=token_to_id, special=special,
                    add_bos=add_bos, add_eos=add_eos, add_space_prefix=add_space_prefix, clean_spaces=clean_spaces,
                    pre=pre, merges=merges)
        vocab._derive_specials()
        vocab._apply_model_attrs(str(md.get("general.name", "")), str(pre_name or ""),
                                 str(md.get("general.architecture", "")))
        if kind == SPM:
            # "<0xNN>", else (llama.cpp's fallback) the one-byte string itself, which only ASCII can be
            vocab.byte_ids = [token_to_id.get(f"<0x{b:02X}>", token_to_id.get(chr(b)) if b < 0x80 else None)
                              for b in range(256)]
        return vocab

    # -- load-time derivations -------------------------------------------------------------------------------

    def _derive_specials(self) -> None:
        """EOT/EOM/FIM auto-detection, unused tokens, the EOG set and the special-token cache (llama.cpp order)."""
        attrs, special = self.attrs, self.special
        candidates = _EOT_TEXTS | _EOM_TEXTS | _EOG_TEXTS | set().union(*_FIM_TEXTS.values()) | set(_ALWAYS_RENDERED)
        # texts are unique in token_to_id; scan it in id order so "first match" is deterministic
        named = sorted((self.token_to_id[t], t) for t in candidates if t in self.token_to_id)

        def detect(name: str, texts: set[str]) -> None:
            if special[name] is not None:
                return
            for i, t in named:
                if t in texts:
                    special[name] = i
                    attrs[i] |= ATTR_CONTROL
                    return

        detect("eot", _EOT_TEXTS)
        detect("eom", _EOM_TEXTS)
        for name, texts in _FIM_TEXTS.items():
            detect(name, texts)

        for i in compress(range(len(attrs)), map(ATTR_CONTROL.__and__, attrs)):  # "<unused12>" controls are unused
            if not attrs[i] & ATTR_UNUSED and "unused" in self.texts[i]:
                attrs[i] |= ATTR_UNUSED

        eog = {special[k] for k in ("fim_pad", "fim_rep", "fim_sep") if special[k] is not None}
        for i, t in named:
            if t in _EOG_TEXTS:
                eog.add(i)
                attrs[i] |= ATTR_CONTROL
        for i, t in named:
            if t in _ALWAYS_RENDERED:
                attrs[i] = ATTR_USER_DEFINED
        eog |= {special[k] for k in ("eos", "eot", "eom") if special[k] is not None}  # type: ignore[misc]

        by_text = {self.texts[i]: i for i in eog}
        # o200k_harmony / solar-open: "<|end|>" ends a message, not the generation
        has = by_text.__contains__
        if "<|end|>" in by_text and ((has("<|return|>") and (has("<|call|>") or has("<|calls|>")))
                                     or ((has("<|call|>") or has("<|calls|>")) and has("<|flush|>"))):
            end_id = by_text["<|end|>"]
            eog.discard(end_id)
            attrs[end_id] = ATTR_USER_DEFINED
        if has("<|tool_response>") and has("</s>"):  # gemma4 / paddleocr
            s_id = by_text["</s>"]
            eog.discard(s_id)
            attrs[s_id] = ATTR_NORMAL
        self.eog_ids = eog

        mask = ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN
        cache = list(compress(range(len(attrs)), map(mask.__and__, attrs)))
        cache.sort(key=lambda i: -len(self.texts[i].encode("utf-8", "surrogateescape")))
        self.special_cache = cache

    def _apply_model_attrs(self, model_name: str, pre_name: str, arch: str) -> None:
        """Per-model LSTRIP/RSTRIP flags that GGUF files do not carry (llama.cpp hard-codes them by name)."""
        name = model_name.lower()

        def set_attr(text: str, attr: int, on: bool) -> None:
            i = self.token_to_id.get(text)
            if i is not None:
                self.attrs[i] = self.attrs[i] | attr if on else self.attrs[i] & ~attr

        if any(s in pre_name for s in ("jina-v2-de", "jina-v2-es", "jina-v2-code")) or any(
                s in arch for s in ("nomic-bert-moe", "jina-bert-v3")):
            set_attr("<mask>", ATTR_LSTRIP, True)
        elif "phi-3" in name or "phi3" in name:
            for i in self.special_cache:
                self.attrs[i] |= ATTR_RSTRIP
            set_attr("</s>", ATTR_RSTRIP, True)
            for text in ("<unk>", "<s>", "<|endoftext|>"):
                set_attr(text, ATTR_RSTRIP, False)
        elif "modern-bert" in name:
            set_attr("[MASK]", ATTR_LSTRIP, True)

    # -- rendering ---------------------------------------------------------------------------------------------

    def piece(self, token: int, special: bool) -> bytes:
        """llama.cpp `token_to_piece` (lstrip=0): the bytes `token` renders to; control/unknown only if `special`."""
        key = (token, special)
        cached = self._pieces.get(key)
        if cached is not None:
            return cached
        if not 0 <= token < len(self.texts):
            raise IndexError(f"token id {token} is outside the vocabulary (size {len(self.texts)})")
        attr, text = self.attrs[token], self.texts[token]
        out = b""
        if attr & (ATTR_UNKNOWN | ATTR_CONTROL) and not special:
            out = b""
        elif attr & (ATTR_UNKNOWN | ATTR_CONTROL | ATTR_USER_DEFINED):
            out = text.encode("utf-8", "surrogateescape")
        elif attr & ATTR_NORMAL:
            if self.kind == SPM:
                out = text.replace("\u2581", " ").encode("utf-8", "surrogateescape")
            else:
                out = byte_level_decode(text)
        elif attr & ATTR_BYTE:
            out = bytes([int(text[3:5], 16)]) if len(text) >= 5 else b""
        if len(self._pieces) < 1_000_000:
            self._pieces[key] = out
        return out


class MergeRanks:
    """BPE merge ranks by pair, looked up in the raw "left right" strings. llama.cpp splits each merge at its first
    space after position 0, so a pair (left, right) is the merge `left + " " + right` exactly when `left` has no
    space past its first character; the first occurrence of a merge keeps its rank. Built at C speed (a dict
    over the strings: 3 ms for 48 900 merges instead of 35 ms splitting each one in Python)."""

    def __init__(self, raw: list[str]) -> None:
        self._by_text = dict(zip(reversed(raw), range(len(raw) - 1, -1, -1)))  # earlier ranks overwrite later

    def get(self, pair: tuple[str, str], default: int | None = None) -> int | None:
        left, right = pair
        if " " in left[1:]:
            return default
        return self._by_text.get(left + " " + right, default)

    def __len__(self) -> int:
        return len(self._by_text)
