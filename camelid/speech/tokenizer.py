"""The Whisper tokenizer (openai/whisper `tokenizer.py`) built from a CTranslate2 model's files.

The vocabulary (`vocabulary.txt`, one GPT-2 byte-level piece per line, id = line index; or `vocabulary.json`,
a list) gives decoding: pieces below <|endoftext|> are byte-level text, the rest are special tokens whose text
is their name. Decoding joins the bytes and reads them as UTF-8 with replacement characters, as tiktoken does.
Encoding (an initial prompt, the non-speech token list) splits text with tiktoken's GPT-2 pattern and applies
the BPE merges of `tokenizer.json`; without that file it merges by vocabulary rank, which is how tiktoken
itself works.

Special ids (English-only tiny.en): eot 50256, sot 50257, 99 language tokens from 50258, translate 50357,
transcribe 50358, startoflm 50359, startofprev 50360, nospeech (“nocaptions”) 50361, notimestamps 50362,
timestamps <|0.00|>…<|30.00|> from 50363 in steps of 0.02 s. Multilingual vocabularies shift them by one.
"""

from __future__ import annotations

import json
import os
import string
from collections.abc import Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import regex

from camelid.errors import BadModelFile, BadRequest
from camelid.tokenizer.bpe import BYTE_TO_CHAR, CHAR_TO_BYTE, BPEModel

LANGUAGES = {
    "en": "english", "zh": "chinese", "de": "german", "es": "spanish", "ru": "russian", "ko": "korean",
    "fr": "french", "ja": "japanese", "pt": "portuguese", "tr": "turkish", "pl": "polish", "ca": "catalan",
    "nl": "dutch", "ar": "arabic", "sv": "swedish", "it": "italian", "id": "indonesian", "hi": "hindi",
    "fi": "finnish", "vi": "vietnamese", "he": "hebrew", "uk": "ukrainian", "el": "greek", "ms": "malay",
    "cs": "czech", "ro": "romanian", "da": "danish", "hu": "hungarian", "ta": "tamil", "no": "norwegian",
    "th": "thai", "ur": "urdu", "hr": "croatian", "bg": "bulgarian", "lt": "lithuanian", "la": "latin",
    "mi": "maori", "ml": "malayalam", "cy": "welsh", "sk": "slovak", "te": "telugu", "fa": "persian",
    "lv": "latvian", "bn": "bengali", "sr": "serbian", "az": "azerbaijani", "sl": "slovenian",
    "kn": "kannada",
    "et": "estonian", "mk": "macedonian", "br": "breton", "eu": "basque", "is": "icelandic", "hy": "armenian",
    "ne": "nepali", "mn": "mongolian", "bs": "bosnian", "kk": "kazakh", "sq": "albanian", "sw": "swahili",
    "gl": "galician", "mr": "marathi", "pa": "punjabi", "si": "sinhala", "km": "khmer", "sn": "shona",
    "yo": "yoruba", "so": "somali", "af": "afrikaans", "oc": "occitan", "ka": "georgian", "be": "belarusian",
    "tg": "tajik", "sd": "sindhi", "gu": "gujarati", "am": "amharic", "yi": "yiddish", "lo": "lao",
    "uz": "uzbek", "fo": "faroese", "ht": "haitian creole", "ps": "pashto", "tk": "turkmen", "nn": "nynorsk",
    "mt": "maltese", "sa": "sanskrit", "lb": "luxembourgish", "my": "myanmar", "bo": "tibetan",
    "tl": "tagalog",
    "mg": "malagasy", "as": "assamese", "tt": "tatar", "haw": "hawaiian", "ln": "lingala", "ha": "hausa",
    "ba": "bashkir", "jw": "javanese", "su": "sundanese", "yue": "cantonese",
}  # openai/whisper's order: language token i is sot + 1 + i

TO_LANGUAGE_CODE = {
    **{language: code for code, language in LANGUAGES.items()},
    "burmese": "my", "valencian": "ca", "flemish": "nl", "haitian": "ht", "letzeburgesch": "lb",
    "pushto": "ps", "panjabi": "pa", "moldavian": "ro", "moldovan": "ro", "sinhalese": "si",
    "castilian": "es", "mandarin": "zh",
}

# tiktoken's GPT-2 split (openai/whisper's pat_str); Hugging Face's ByteLevel pre-tokenizer is the same.
GPT2_PATTERN = regex.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
TIMESTAMP_STEP = 0.02  # seconds per timestamp token
TASKS = ("transcribe", "translate")
NO_SPACE_LANGUAGES = {"zh", "ja", "th", "lo", "my", "yue"}  # split into words at character boundaries
MULTILINGUAL_VOCAB = 51865


class _RanksFromVocabulary:
    """Merge ranks the tiktoken way: a pair's rank is the id of the token it forms (lower merges first)."""

    def __init__(self, token_to_id: Mapping[str, int]) -> None:
        self.token_to_id = token_to_id

    def get(self, pair: tuple[str, str]) -> int | None:
        return self.token_to_id.get(pair[0] + pair[1])


class WhisperTokenizer:
    """Token ids <-> text for Whisper; special ids looked up by name in the vocabulary."""

    def __init__(self, vocabulary: list[str], merges: list[tuple[str, str]] | None = None,
                 multilingual: bool | None = None) -> None:
        self.vocabulary = vocabulary
        self.token_to_id = {piece: index for index, piece in enumerate(vocabulary)}
        self.multilingual = len(vocabulary) >= MULTILINGUAL_VOCAB if multilingual is None else multilingual
        self.eot = self._special("<|endoftext|>")
        self.sot = self._special("<|startoftranscript|>")
        self.translate = self._special("<|translate|>")
        self.transcribe = self._special("<|transcribe|>")
        self.sot_lm = self._special("<|startoflm|>")
        self.sot_prev = self._special("<|startofprev|>")
        self.no_speech = self._special("<|nospeech|>", "<|nocaptions|>")
        self.no_timestamps = self._special("<|notimestamps|>")
        self.timestamp_begin = self.token_to_id.get("<|0.00|>", self.no_timestamps + 1)
        self.num_languages = self.translate - self.sot - 1
        self.languages = tuple(LANGUAGES)[:self.num_languages]
        self._merges = merges

    def _special(self, *names: str) -> int:
        for name in names:
            if name in self.token_to_id:
                return self.token_to_id[name]
        raise BadModelFile(f"the Whisper vocabulary has no {names[0]} token")

    @classmethod
    def from_files(cls, source: str | os.PathLike | Mapping[str, str | os.PathLike] | Any,
                   multilingual: bool | None = None) -> WhisperTokenizer:
        """From a CTranslate2 model folder or {file name: path} (vocabulary.txt or .json)."""
        files = getattr(source, "files", source)
        if not isinstance(files, Mapping):
            folder = Path(files).expanduser()
            files = {entry.name: entry for entry in folder.iterdir()} if folder.is_dir() else {}
        files = {str(name): Path(path) for name, path in files.items()}
        if "vocabulary.txt" in files:
            vocabulary = read_vocabulary_txt(files["vocabulary.txt"])
        elif "vocabulary.json" in files:
            vocabulary = read_vocabulary_json(files["vocabulary.json"])
        else:
            raise BadModelFile(f"the Whisper model has no vocabulary.txt or vocabulary.json "
                               f"(files: {', '.join(sorted(files)) or 'none'})")
        # tokenizer.json's merges are ignored: for the multilingual vocabulary they differ from openai's
        # (" hello there" gives 3 tokens instead of 2); ranking merges by vocabulary id, as tiktoken does, matches.
        return cls(vocabulary, None, multilingual)

    # --- decoding -------------------------------------------------------------------------------------------

    @cached_property
    def _piece_bytes(self) -> list[bytes]:
        """The bytes of every id: byte-level pieces below eot, the UTF-8 of their name for special tokens."""
        out = []
        for index, piece in enumerate(self.vocabulary):
            if index < self.eot:
                try:
                    out.append(bytes(CHAR_TO_BYTE[ch] for ch in piece))
                    continue
                except KeyError:
                    pass  # not a byte-level piece: keep its text
            out.append(piece.encode("utf-8"))
        return out

    def _bytes(self, token_ids: Iterable[int]) -> bytes:
        pieces = self._piece_bytes
        out = bytearray()
        for token in token_ids:
            token = int(token)
            if 0 <= token < len(pieces):
                out += pieces[token]
            elif token >= self.timestamp_begin:  # a vocabulary that stops before the timestamps
                out += self.timestamp_text(token).encode()
            else:
                raise BadRequest(f"token id {token} is outside the vocabulary (0…{len(pieces) - 1})")
        return bytes(out)

    def decode(self, token_ids: Iterable[int], skip_special: bool = False) -> str:
        """Text of `token_ids` as openai/whisper decodes it: timestamp tokens dropped, other special tokens
        written by name (`<|endoftext|>`) unless `skip_special`, which drops every id from eot up."""
        limit = self.eot if skip_special else self.timestamp_begin
        return self._bytes(t for t in token_ids if int(t) < limit).decode("utf-8", errors="replace")

    def decode_with_timestamps(self, token_ids: Iterable[int]) -> str:
        """Text with every token kept, timestamps written as `<|1.08|>`."""
        return self._bytes(token_ids).decode("utf-8", errors="replace")

    def timestamp_text(self, token: int) -> str:
        return f"<|{(token - self.timestamp_begin) * TIMESTAMP_STEP:.2f}|>"

    def timestamp_seconds(self, token: int) -> float:
        """Seconds from the segment start of a timestamp token."""
        return (token - self.timestamp_begin) * TIMESTAMP_STEP

    # --- encoding -------------------------------------------------------------------------------------------

    @cached_property
    def _bpe(self) -> BPEModel:
        text_tokens = {piece: index for index, piece in enumerate(self.vocabulary[:self.eot])}
        if self._merges is not None:
            ranks: Any = {pair: rank for rank, pair in enumerate(self._merges)}
        else:
            ranks = _RanksFromVocabulary(text_tokens)
        return BPEModel(ranks, text_tokens)

    def encode(self, text: str) -> list[int]:
        """Token ids of plain text (special-token names in it are encoded as text)."""
        bpe = self._bpe
        ids: list[int] = []
        for word in GPT2_PATTERN.findall(text):
            ids.extend(bpe.encode_word("".join(BYTE_TO_CHAR[b] for b in word.encode("utf-8"))))
        return ids

    # --- special sequences ----------------------------------------------------------------------------------

    def language_code(self, language: str) -> str:
        """A code ("en") from a code or a name ("English"); BadRequest if the model does not know it."""
        key = language.strip().lower()
        code = key if key in LANGUAGES else TO_LANGUAGE_CODE.get(key)
        if code is None or code not in self.languages:
            raise BadRequest(f"unsupported language '{language}'; Whisper knows: {', '.join(self.languages)}")
        return code

    def language_token(self, language: str) -> int:
        return self.sot + 1 + self.languages.index(self.language_code(language))

    @property
    def all_language_tokens(self) -> tuple[int, ...]:
        return tuple(range(self.sot + 1, self.sot + 1 + self.num_languages))

    @property
    def all_language_codes(self) -> tuple[str, ...]:
        return self.languages

    def sot_sequence(self, language: str | None = "en", task: str | None = "transcribe") -> tuple[int, ...]:
        """The decoder prompt: <|startoftranscript|>, then for a multilingual model the language token (None:
        left out, e.g. to detect the language) and the task token. English-only models take neither
        (openai/whisper ignores language and task for them), so their sequence is (sot,)."""
        if not self.multilingual:
            return (self.sot,)
        sequence = [self.sot]
        if language is not None:
            sequence.append(self.language_token(language))
        if task is not None:
            if task not in TASKS:
                raise BadRequest(f"unknown task '{task}': use transcribe or translate")
            sequence.append(self.transcribe if task == "transcribe" else self.translate)
        return tuple(sequence)

    @cached_property
    def non_speech_tokens(self) -> tuple[int, ...]:
        """Tokens of speaker tags and non-speech annotations (♪, [, ( …) that openai/whisper suppresses when
        suppress_tokens is "-1"; hyphens and quotes stay allowed inside words."""
        symbols = list('"#()*+/:;<=>@[\\]^_`{|}~「」『』')
        symbols += ["<<", ">>", "<<<", ">>>", "--", "---", "-(", "-[", "('", '("', "((", "))", "(((", ")))",
                    "[[", "]]", "{{", "}}", "♪♪", "♪♪♪"]
        # U+2640…U+267F share their first two UTF-8 bytes: suppressing their first token is enough
        miscellaneous = set("♩♪♫♬♭♮♯")
        result = {self.encode(" -")[0], self.encode(" '")[0]}
        for symbol in symbols + sorted(miscellaneous):
            for tokens in (self.encode(symbol), self.encode(" " + symbol)):
                if len(tokens) == 1 or symbol in miscellaneous:
                    result.add(tokens[0])
        return tuple(sorted(result))

    def split_to_word_tokens(self, tokens: list[int], language: str | None = None
                             ) -> tuple[list[str], list[list[int]]]:
        """Words and their tokens (for word timestamps): split at spaces and punctuation, or at every complete
        character for languages written without spaces (openai/whisper's rule)."""
        subwords, subword_tokens = self._split_on_unicode(tokens)
        if language in NO_SPACE_LANGUAGES:
            return subwords, subword_tokens
        words: list[str] = []
        word_tokens: list[list[int]] = []
        for subword, pieces in zip(subwords, subword_tokens, strict=True):
            special = pieces[0] >= self.eot
            if special or subword.startswith(" ") or subword.strip() in string.punctuation or not words:
                words.append(subword)
                word_tokens.append(list(pieces))
            else:
                words[-1] += subword
                word_tokens[-1].extend(pieces)
        return words, word_tokens

    def _split_on_unicode(self, tokens: list[int]) -> tuple[list[str], list[list[int]]]:
        full = self.decode_with_timestamps(tokens)
        words: list[str] = []
        word_tokens: list[list[int]] = []
        current: list[int] = []
        offset = 0
        for token in tokens:
            current.append(token)
            decoded = self.decode_with_timestamps(current)
            if "\ufffd" not in decoded or full[offset + decoded.index("\ufffd")] == "\ufffd":
                words.append(decoded)
                word_tokens.append(current)
                current = []
                offset += len(decoded)
        return words, word_tokens


def read_vocabulary_txt(path: str | os.PathLike) -> list[str]:
    """One piece per line; the id is the line index (lines are split on "\\n" only)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise BadModelFile(f"{path}: vocabulary.txt cannot be read: {err}") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def read_vocabulary_json(path: str | os.PathLike) -> list[str]:
    """A JSON list of pieces (newer CTranslate2 converters)."""
    try:
        vocabulary = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadModelFile(f"{path}: vocabulary.json cannot be read: {err}") from None
    if not isinstance(vocabulary, list) or not all(isinstance(piece, str) for piece in vocabulary):
        raise BadModelFile(f"{path}: vocabulary.json is not a list of strings")
    return vocabulary


def read_merges(path: str | os.PathLike) -> list[tuple[str, str]]:
    """The BPE merges of a Hugging Face tokenizer.json ("a b" strings or [a, b] pairs), in priority order."""
    try:
        merges = json.loads(Path(path).read_text(encoding="utf-8"))["model"]["merges"]
        pairs = [merge.split(" ", 1) if isinstance(merge, str) else merge for merge in merges]
        return [(pair[0], pair[1]) for pair in pairs]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, IndexError,
            ValueError) as err:
        raise BadModelFile(f"{path}: tokenizer.json has no readable BPE merges ({err})") from None
