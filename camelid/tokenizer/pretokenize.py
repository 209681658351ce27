"""BPE pre-tokenization exactly as llama.cpp does it (`unicode_regex_split` in src/unicode.cpp).

llama.cpp applies a list of regexes per `tokenizer.ggml.pre` value, one after the other: each regex splits
every current chunk into its matches *and* the text between matches. Regexes that use Unicode classes
(\\p{L}, \\p{N}, ...) do not run on the text itself: every non-ASCII code point is first "collapsed" to one
byte standing for its category (letter, number, punctuation, mark, symbol, other; non-ASCII whitespace
becomes \\v), and the class is rewritten to that byte plus its ASCII members; the regex then runs with
ECMAScript semantics (ASCII-only \\s, \\d, \\w). We do the same with Python's `re` (ASCII flag), so quirks
such as "every non-ASCII letter is both upper and lower case" in the GPT-4o pattern are reproduced.

llama.cpp's hand-written splitters for the GPT-2 and Llama-3 patterns are equivalent to running those
regexes on the collapsed text (same classes, same leftmost-alternative order), so one mechanism covers all.
Code point categories come from the `regex` module, which is also what llama.cpp's
scripts/gen-unicode-data.py used to build its tables (differences only for code points assigned in newer
Unicode versions than llama.cpp's table).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import regex

from camelid.errors import UnsupportedModel

# -- the regexes, written as llama.cpp writes them (its "adapted" forms) -------------------------------------------

_CONTRACTIONS = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
LLAMA3 = (_CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
          r"|\s+(?!\S)|\s+")
QWEN2 = (_CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
         r"|\s+(?!\S)|\s+")
QWEN35 = (_CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*"
          r"|\s*[\r\n]+|\s+(?!\S)|\s+")
_UPPERISH = r"((?=[\p{L}])([^a-z]))"
_LOWERISH = r"((?=[\p{L}])([^A-Z]))"
TEKKEN = (r"[^\r\n\p{L}\p{N}]?" + _UPPERISH + "*" + _LOWERISH + r"+|[^\r\n\p{L}\p{N}]?" + _UPPERISH + "+"
          + _LOWERISH + r"*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
GPT4O = (r"[^\r\n\p{L}\p{N}]?" + _UPPERISH + "*" + _LOWERISH + "+" + _CONTRACTIONS + r"?|[^\r\n\p{L}\p{N}]?"
         + _UPPERISH + "+" + _LOWERISH + "*" + _CONTRACTIONS + r"?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*"
         r"|\s*[\r\n]+|\s+(?!\S)|\s+")
_CASED = r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]"
_LOWER = r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]"
TINY_AYA = (r"[^\r\n\p{L}\p{N}]?" + _CASED + "*" + _LOWER + "+" + _CONTRACTIONS + r"?|[^\r\n\p{L}\p{N}]?" + _CASED
            + "+" + _LOWER + "*" + _CONTRACTIONS + r"?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+"
            r"|\s+(?!\S)|\s+")
BAILINGMOE = (r"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
              r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+")
SEED_CODER = (_CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+"
              r"|\s+(?!\S)|\s+")
UFAKZEKA = r"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
MINICPM5 = (_CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
            r"|\s+(?!\S)|\s+")
EXAONE_MOE = (_CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}"
              r"| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+")
JAIS2 = (_CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
         + "".join(rf"|\s{{{n}}}(?!\S)" for n in (512, 256, 128, 64, 32, 16, 8, 4)) + r"|\s{1,2}(?!\S)|\s{1}")
DEEPSEEK3_MAIN = (r"[!\"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+"
                  r"| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# cased letters (Lu/Ll/Lt) as listed in deepseek-llm's tokenizer.json; escaped so no editor can normalize them
DEEPSEEK_LLM_LETTERS = (
    "\\s?[A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-\u02af"
    "\u0370-\u0373\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1\u03a3-\u03f5"
    "\u03f7-\u0481\u048a-\u052f\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba"
    "\u1cbd-\u1cbf\u1d00-\u1d2b\u1d6b-\u1d77\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45"
    "\u1f48-\u1f4d\u1f50-\u1f57\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe"
    "\u1fc2-\u1fc4\u1fc6-\u1fcc\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4\u1ff6-\u1ffc\u2102"
    "\u2107\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-\u212d\u212f-\u2134\u2139"
    "\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee\u2cf2\u2cf3"
    "\ua640-\ua66d\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e\uab70-\uabbf\ufb00-\ufb06"
    "\ufb13-\ufb17\uff21-\uff3a\uff41-\uff5a\U00010400-\U0001044f\U000104b0-\U000104d3"
    "\U000104d8-\U000104fb\U00010c80-\U00010cb2\U00010cc0-\U00010cf2\U000118a0-\U000118df"
    "\U0001e900-\U0001e943]+"
)
PORO = " ?[^(\\s|.,!?\u2026\u3002\uff0c\u3001\u0964\u06d4\u060c)]+"
_CJK_DS = "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+"  # deepseek: CJK, then U+0800..U+4E00, then Hangul
_CJK_KANA = "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+"
_DS_PUNCT = "\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+"
DEFAULT = [r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"]

# name(s) -> (regexes, clean_spaces, ignore_merges, add_bos default, bos disabled)
_TABLE: list[tuple[tuple[str, ...], list[str], bool, bool, bool, bool]] = [
    (("default",), DEFAULT, True, False, False, False),
    (("llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano"),
     [LLAMA3], True, True, True, False),
    (("dbrx", "smaug-bpe"), [LLAMA3], True, False, False, False),
    (("deepseek-llm",), ["[\r\n]", DEEPSEEK_LLM_LETTERS, _DS_PUNCT, "\\s+$",
                         _CJK_DS, r"\p{N}+"], False, False, False, False),
    (("deepseek-coder",), ["[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", _CJK_DS, r"\p{N}"],
     False, False, False, False),
    (("deepseek-v3", "hunyuan-dense", "joyai-llm", "hy_v4"), [r"\p{N}{1,3}", _CJK_KANA, DEEPSEEK3_MAIN],
     False, False, False, False),
    (("falcon",), [r"[\p{P}\$\+<=>\^~\|`]+", GPT2, "[0-9][0-9][0-9]"], True, False, False, False),
    (("starcoder", "refact", "codeshell", "exaone", "minerva-7b", "mellum2"), [r"\p{N}", GPT2],
     True, False, False, False),
    (("smollm", "command-r"), [r"\p{N}", GPT2], False, False, False, False),
    (("gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum",
      "modern-bert", "jina-v1-en", "jina-v2-code", "roberta-bpe", "exaone4", "mpt", "olmo", "jais"),
     [GPT2], True, False, False, False),
    (("trillion", "granite-docling"), [GPT2], False, False, False, False),
    (("qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "hunyuan", "solar-open"), [QWEN2], False, False, False, False),
    (("megrez", "stablelm2"), [QWEN2], True, False, False, False),
    (("qwen35",), [QWEN35], False, False, False, False),
    (("poro-chat",), [PORO], False, False, False, False),
    (("bloom", "gpt3-finnish"), [PORO], True, False, False, False),
    (("viking",), [PORO, r"\p{N}"], False, False, False, False),
    (("glm4", "chatglm-bpe"), [LLAMA3], True, False, False, True),
    (("tekken",), [TEKKEN], False, True, True, False),
    (("gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2"), [GPT4O], False, False, False, False),
    (("tiny_aya", "cohere2moe"), [r"\d{1,3}(?=(?:\d{3})*\b)", TINY_AYA], False, False, False, False),
    (("superbpe",), [r"\p{N}+", r"(?=(\d{3})+(?!\d))"], False, False, False, False),
    (("bailingmoe", "bailingmoe2", "llada-moe"), [BAILINGMOE], False, False, False, False),
    (("seed-coder",), [SEED_CODER], False, False, False, False),
    (("grok-2",), [QWEN2], False, False, False, False),
    (("ufakzeka",), [UFAKZEKA], False, False, False, False),
    (("minicpm5",), [r"\p{N}{1,3}", MINICPM5], True, True, False, False),
    (("exaone-moe",), [EXAONE_MOE], True, False, False, False),
    (("jais-2",), [JAIS2], True, False, False, False),
    (("laguna",), ["[^\\n]+|[\\n]+", QWEN2], False, False, False, False),
    (("chameleon",), ["<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", "([\\t\\n]|    |  )", r"\p{N}",
                      r"[\p{P}!-/:-@\[-`{-~]", GPT2], False, False, True, False),
]

# -- collapsing -------------------------------------------------------------------------------------------------

_WS, _NUM, _LET, _PUN, _MRK, _SYM, _OTHER = "\x0b", "\xd1", "\xd2", "\xd3", "\xd4", "\xd5", "\xd0"
_CLASS_BODY = {  # llama.cpp's k_ucat_cpt + k_ucat_map: category byte, then its ASCII members
    "N": _NUM + "0-9",
    "L": _LET + "A-Za-z",
    "P": _PUN + r"!-#%-*,-/:-;?-@\[-\]_\{\}",
    "M": _MRK,
    "S": _SYM + r"\$\+<->\^`\|",
}
for _sub in ("Lu", "Ll", "Lt", "Lm", "Lo"):
    _CLASS_BODY[_sub] = _CLASS_BODY["L"]

_CLASSIFY = regex.compile(r"(\s)|(\p{N})|(\p{L})|(\p{P})|(\p{M})|(\p{S})")
_GROUP_CHAR = {1: _WS, 2: _NUM, 3: _LET, 4: _PUN, 5: _MRK, 6: _SYM}
_collapsed_of: dict[int, str] = {}


def _collapsed_char(cp: int) -> str:
    c = _collapsed_of.get(cp)
    if c is None:
        m = _CLASSIFY.match(chr(cp))
        c = _GROUP_CHAR[m.lastindex] if m and m.lastindex else _OTHER
        _collapsed_of[cp] = c
    return c


def collapse(text: str) -> str:
    """Each non-ASCII code point replaced by its category byte (same length as `text`)."""
    if text.isascii():
        return text
    return text.translate({cp: _collapsed_char(cp) for cp in {ord(c) for c in text} if cp >= 0x80})


def _wide(text: str) -> str:
    """Text for regexes without Unicode classes: only non-ASCII whitespace is replaced (by \\v)."""
    if text.isascii():
        return text
    return text.translate({cp: _WS for cp in {ord(c) for c in text} if cp >= 0x80 and _collapsed_char(cp) == _WS})


def _rewrite(expr: str) -> str:
    """llama.cpp's regex rewrite for collapsed text: \\p{X} -> [<category byte><ASCII members>]."""
    out: list[str] = []
    inside = False
    i = 0
    while i < len(expr):
        c = expr[i]
        escaped = i > 0 and expr[i - 1] == "\\"
        if c == "[" and not escaped:
            inside = True
        elif c == "]" and inside and not escaped:
            inside = False
        elif c == "\\" and expr.startswith("p{", i + 1):
            end = expr.find("}", i + 3)
            body = _CLASS_BODY.get(expr[i + 3:end]) if end != -1 and end <= i + 10 else None
            if body is None:
                raise UnsupportedModel(f"pre-tokenizer regex uses an unsupported class: {expr[i:end + 1]}")
            out.append(body if inside else "[" + body + "]")
            i = end + 1
            continue
        elif c == "$" and not inside and not escaped:
            c = r"\Z"  # ECMAScript '$' (no multiline) is the very end; Python's also matches before a final \n
        out.append(c)
        i += 1
    return "".join(out)


@dataclass(frozen=True)
class PreTokenizer:
    """The ordered regex list of one `tokenizer.ggml.pre` value and the vocab flags that value implies."""

    name: str
    exprs: tuple[str, ...]
    clean_spaces: bool
    ignore_merges: bool
    add_bos: bool
    no_bos: bool

    @property
    def compiled(self) -> list[tuple[re.Pattern[str], bool]]:
        return _compile(self.exprs)

    def split(self, text: str) -> list[str]:
        """Split `text` into pre-tokens (llama.cpp keeps both the matches and the gaps between them)."""
        if not text:
            return []
        spans = [(0, len(text))]
        views: dict[bool, str] = {}
        for pattern, use_collapsed in self.compiled:
            src = views.get(use_collapsed)
            if src is None:
                src = views[use_collapsed] = collapse(text) if use_collapsed else _wide(text)
            new: list[tuple[int, int]] = []
            for start, end in spans:
                chunk = src[start:end]  # a slice, so lookarounds and \b see the chunk's own edges
                pos = 0
                for m in pattern.finditer(chunk):
                    ms, me = m.span()
                    if ms > pos:
                        new.append((start + pos, start + ms))
                    if me > ms:
                        new.append((start + ms, start + me))
                    pos = me
                if pos < len(chunk):
                    new.append((start + pos, end))
            spans = new
        return [text[s:e] for s, e in spans]


@cache
def _compile(exprs: tuple[str, ...]) -> list[tuple[re.Pattern[str], bool]]:
    out = []
    for expr in exprs:
        use_collapsed = "\\p{" in expr
        out.append((re.compile(_rewrite(expr) if use_collapsed else _rewrite_plain(expr), re.ASCII), use_collapsed))
    return out


def _rewrite_plain(expr: str) -> str:
    return _rewrite(expr) if "$" in expr else expr


_BY_NAME: dict[str, tuple[list[str], bool, bool, bool, bool]] = {
    name: (exprs, clean, ignore, add_bos, no_bos) for names, exprs, clean, ignore, add_bos, no_bos in _TABLE
    for name in names
}
SUPPORTED_PRE: tuple[str, ...] = tuple(sorted(_BY_NAME))


def resolve_pre(name: str | None) -> PreTokenizer:
    """The pre-tokenizer for a `tokenizer.ggml.pre` value; missing means "default" (as llama.cpp, with a warning)."""
    key = name or "default"
    entry = _BY_NAME.get(key)
    if entry is None:
        raise UnsupportedModel(f"BPE pre-tokenizer '{key}' is not supported; known: {', '.join(SUPPORTED_PRE)}")
    exprs, clean, ignore, add_bos, no_bos = entry
    return PreTokenizer(key, tuple(exprs), clean, ignore, add_bos, no_bos)
