"""Transcription output writers: plain text, SRT and WebVTT subtitles, openai-whisper's JSON and TSV.

The formats follow openai-whisper's `whisper/utils.py` writers, so files written here read the same as
``whisper --output_format ...`` writes them:

- TXT: each segment's text, stripped, one a line.
- SRT: cues numbered from 1, ``HH:MM:SS,mmm --> HH:MM:SS,mmm`` (hours always, a comma before the
  milliseconds), the text, a blank line after each cue.
- VTT: a ``WEBVTT`` header and a blank line, then cues timed ``MM:SS.mmm`` or ``HH:MM:SS.mmm`` (hours only
  from one hour on), a dot before the milliseconds.
- JSON: openai-whisper's result dict (``text``, ``segments`` with their fields, ``language``), UTF-8.
- TSV: a ``start end text`` header, then start and end in integer milliseconds and the text, tab-separated.

SRT and VTT differ only by two class attributes of `SubtitlesWriter`. When every segment has word timings
the subtitle cues are built from the words, and openai-whisper's options apply: ``max_line_width``,
``max_line_count``, ``highlight_words`` (each word underlined in turn with ``<u>``) and
``max_words_per_line``. Without word timings those options are ignored, as openai-whisper's writers
ignore them (its CLI refuses them without ``--word_timestamps True``; a caller that wants that should check
`has_word_timings` first).

Where openai-whisper can write a malformed subtitle file this module does not: ``-->`` is replaced with
``->`` until none is left (openai-whisper turns ``--->`` into ``-->``), blank lines inside a cue's text are
dropped and a cue whose text is empty is left out (a blank line ends a cue). No torch here.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from camelid.errors import BadRequest

__all__ = [
    "SUBTITLE_OPTIONS",
    "WRITERS",
    "ResultWriter",
    "Segment",
    "SubtitlesWriter",
    "Transcript",
    "Word",
    "WriteAll",
    "WriteJSON",
    "WriteSRT",
    "WriteTSV",
    "WriteTXT",
    "WriteVTT",
    "format_timestamp",
    "get_writer",
    "has_word_timings",
    "write_outputs",
]

# Segment fields of openai-whisper's JSON besides id/start/end/text/words, in its key order.
_OPTIONAL_SEGMENT_FIELDS = ("seek", "tokens", "temperature", "avg_logprob", "compression_ratio", "no_speech_prob")
SUBTITLE_OPTIONS = ("max_line_width", "max_line_count", "highlight_words", "max_words_per_line")
LONG_PAUSE = 3.0  # seconds between words that start a new cue when segments are not preserved


@dataclass
class Word:
    """One word with its timing; ``text`` keeps its leading space as Whisper's tokens give it (" world")."""

    start: float
    end: float
    text: str
    probability: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        """openai-whisper's word dict: ``word``, ``start``, ``end``, ``probability``."""
        return {"word": self.text, "start": self.start, "end": self.end, "probability": self.probability}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Word:
        return cls(
            start=data["start"], end=data["end"], text=data["word"], probability=data.get("probability", 1.0)
        )


@dataclass
class Segment:
    """One decoded segment. The optional fields are those of openai-whisper's JSON; None means not known."""

    id: int
    start: float
    end: float
    text: str
    words: list[Word] | None = None
    seek: int | None = None
    tokens: list[int] | None = None
    temperature: float | None = None
    avg_logprob: float | None = None
    compression_ratio: float | None = None
    no_speech_prob: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """openai-whisper's segment dict, in its key order; fields that are None are left out."""
        data: dict[str, Any] = {"id": self.id}
        if self.seek is not None:
            data["seek"] = self.seek
        data.update(start=self.start, end=self.end, text=self.text)
        for name in _OPTIONAL_SEGMENT_FIELDS[1:]:
            value = getattr(self, name)
            if value is not None:
                data[name] = list(value) if name == "tokens" else value
        if self.words is not None:
            data["words"] = [word.to_dict() for word in self.words]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Segment:
        words = data.get("words")
        return cls(
            id=data["id"],
            start=data["start"],
            end=data["end"],
            text=data["text"],
            words=None if words is None else [Word.from_dict(word) for word in words],
            **{name: data.get(name) for name in _OPTIONAL_SEGMENT_FIELDS},
        )


@dataclass
class Transcript:
    """A whole transcription: its text, its segments in time order, the language code and the audio's length.

    ``duration`` is not part of openai-whisper's JSON and is not written there."""

    text: str
    segments: list[Segment] = field(default_factory=list)
    language: str = ""
    duration: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """openai-whisper's result dict: ``text``, ``segments``, ``language``."""
        return {
            "text": self.text,
            "segments": [segment.to_dict() for segment in self.segments],
            "language": self.language,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transcript:
        return cls(
            text=data["text"],
            segments=[Segment.from_dict(segment) for segment in data.get("segments", [])],
            language=data.get("language", ""),
            duration=data.get("duration"),
        )


def format_timestamp(seconds: float, always_include_hours: bool = False, decimal_marker: str = ".") -> str:
    """``[HH:]MM:SS<marker>mmm`` with milliseconds = round(seconds * 1000), as openai-whisper formats times.

    Hours are written when asked for or when the time reaches one hour (two digits at least)."""
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a timestamp must be a finite number of seconds >= 0, not {seconds!r}")
    milliseconds = round(seconds * 1000.0)
    hours, milliseconds = divmod(milliseconds, 3_600_000)
    minutes, milliseconds = divmod(milliseconds, 60_000)
    whole_seconds, milliseconds = divmod(milliseconds, 1_000)
    hours_part = f"{hours:02d}:" if always_include_hours or hours > 0 else ""
    return f"{hours_part}{minutes:02d}:{whole_seconds:02d}{decimal_marker}{milliseconds:03d}"


def has_word_timings(transcript: Transcript) -> bool:
    """Whether subtitle cues are built from word timings: there are segments and each has its words."""
    return bool(transcript.segments) and all(segment.words is not None for segment in transcript.segments)


def _check_options(options: dict[str, Any]) -> dict[str, Any]:
    """The subtitle options, checked; unknown names and bad values raise BadRequest."""
    unknown = sorted(set(options) - set(SUBTITLE_OPTIONS))
    if unknown:
        raise BadRequest(
            f"unknown writer option {', '.join(map(repr, unknown))}; the options are {', '.join(SUBTITLE_OPTIONS)}"
        )
    checked: dict[str, Any] = {name: None for name in SUBTITLE_OPTIONS}
    checked["highlight_words"] = False
    for name, value in options.items():
        if name == "highlight_words":
            if not isinstance(value, bool):
                raise BadRequest(f"highlight_words must be true or false, not {value!r}")
        elif value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise BadRequest(f"{name} must be a whole number >= 1, not {value!r}")
        checked[name] = value
    return checked


def _clean_cue_text(text: str) -> str:
    """Cue text that cannot break a subtitle file: no ``-->`` (replaced with ``->`` until none is left, so
    ``--->`` does not become ``-->``) and no blank line (which would end the cue)."""
    while "-->" in text:
        text = text.replace("-->", "->")
    return "\n".join(line for line in text.splitlines() if line.strip())


def _underline(word: str) -> str:
    """The word underlined after its leading whitespace (a space or the line break put before it)."""
    body = word.lstrip()
    return f"{word[: len(word) - len(body)]}<u>{body}</u>"


class ResultWriter:
    """Writes a `Transcript` in one format. Subclasses set ``extension`` and implement `_write`."""

    extension: str

    def write(self, transcript: Transcript, file: TextIO, **options: Any) -> None:
        """Write the transcript to an open text file. Options: those of `SUBTITLE_OPTIONS` (only the
        subtitle writers use them; the others check and ignore them)."""
        self._write(transcript, file, _check_options(options))

    def to_string(self, transcript: Transcript, **options: Any) -> str:
        """What `write` would write, as a string."""
        buffer = io.StringIO()
        self.write(transcript, buffer, **options)
        return buffer.getvalue()

    def write_to_dir(self, transcript: Transcript, audio_path: str | Path, output_dir: str | Path,
                     **options: Any) -> list[Path]:
        """Write ``<output_dir>/<stem of audio_path>.<extension>`` (UTF-8, ``\\n`` line ends); its path."""
        checked = _check_options(options)
        path = Path(output_dir) / f"{Path(audio_path).stem}.{self.extension}"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as file:
            self._write(transcript, file, checked)
        return [path]

    def _write(self, transcript: Transcript, file: TextIO, options: dict[str, Any]) -> None:
        raise NotImplementedError


class WriteTXT(ResultWriter):
    """Each segment's text, stripped, on its own line."""

    extension = "txt"

    def _write(self, transcript: Transcript, file: TextIO, options: dict[str, Any]) -> None:
        file.writelines(segment.text.strip() + "\n" for segment in transcript.segments)


class SubtitlesWriter(ResultWriter):
    """Cues from segments, or from word timings when every segment has them. SRT and VTT set how
    timestamps are written."""

    always_include_hours: bool
    decimal_marker: str

    def format_timestamp(self, seconds: float) -> str:
        return format_timestamp(seconds, self.always_include_hours, self.decimal_marker)

    def iterate_result(self, transcript: Transcript, **options: Any) -> Iterator[tuple[str, str, str]]:
        """(start, end, text) of each cue, the times formatted, the text ready to write (never empty)."""
        for start, end, text in self._iterate_cues(transcript, _check_options(options)):
            text = _clean_cue_text(text)
            if text:
                yield start, end, text

    def _iterate_cues(self, transcript: Transcript, options: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
        if not has_word_timings(transcript):
            for segment in transcript.segments:
                yield (self.format_timestamp(segment.start), self.format_timestamp(segment.end),
                       segment.text.strip())
            return
        for cue in _word_cues(transcript.segments, options["max_line_width"], options["max_line_count"],
                              options["max_words_per_line"]):
            cue_start = self.format_timestamp(cue[0][0])
            cue_end = self.format_timestamp(cue[-1][1])
            cue_words = [text for _, _, text in cue]
            cue_text = "".join(cue_words)
            if not options["highlight_words"]:
                yield cue_start, cue_end, cue_text
                continue
            last = cue_start
            for i, (word_start, word_end, _) in enumerate(cue):
                start = self.format_timestamp(word_start)
                end = self.format_timestamp(word_end)
                if last != start:  # a gap before this word: the cue without an underlined word
                    yield last, start, cue_text
                yield start, end, "".join(_underline(w) if j == i else w for j, w in enumerate(cue_words))
                last = end

    def _write(self, transcript: Transcript, file: TextIO, options: dict[str, Any]) -> None:
        raise NotImplementedError


def _word_cues(segments: list[Segment], max_line_width: int | None, max_line_count: int | None,
               max_words_per_line: int | None) -> Iterator[list[tuple[float, float, str]]]:
    """Group word timings into cues as openai-whisper's SubtitlesWriter.iterate_result does.

    Each cue is a list of (start, end, text); a word that begins a line is stripped, and one that begins
    a line after the first of its cue gets a ``\\n`` in front. Words fill a line up to ``max_line_width``
    characters. Segments stay cues of their own unless both ``max_line_width`` and ``max_line_count`` are
    given; then a cue ends after ``max_line_count`` lines or before a pause of more than 3 seconds. A run of
    ``max_words_per_line`` words of a segment starts a new cue when segments are kept."""
    preserve_segments = max_line_count is None or max_line_width is None
    width = max_line_width if max_line_width is not None else math.inf
    line_len = 0
    line_count = 1
    cue: list[tuple[float, float, str]] = []
    last = next((w.start for s in segments for w in s.words or []), segments[0].start if segments else 0.0)
    for segment in segments:
        words = segment.words or []
        per_chunk = max_words_per_line or max(len(words), 1)
        for chunk_start in range(0, len(words), per_chunk):
            for i, word in enumerate(words[chunk_start:chunk_start + per_chunk]):
                text = word.text
                long_pause = not preserve_segments and word.start - last > LONG_PAUSE
                has_room = line_len + len(text) <= width
                segment_break = i == 0 and bool(cue) and preserve_segments
                if line_len > 0 and has_room and not long_pause and not segment_break:
                    line_len += len(text)  # the line goes on
                else:
                    text = text.strip()
                    if segment_break or (
                        cue and max_line_count is not None and (long_pause or line_count >= max_line_count)
                    ):
                        yield cue  # a new cue
                        cue = []
                        line_count = 1
                    elif line_len > 0:
                        line_count += 1  # a new line in this cue
                        text = "\n" + text
                    line_len = len(text.strip())
                cue.append((word.start, word.end, text))
                last = word.start
    if cue:
        yield cue


class WriteVTT(SubtitlesWriter):
    """WebVTT: a header, then cues timed ``[HH:]MM:SS.mmm``."""

    extension = "vtt"
    always_include_hours = False
    decimal_marker = "."

    def _write(self, transcript: Transcript, file: TextIO, options: dict[str, Any]) -> None:
        file.write("WEBVTT\n\n")
        cues = self.iterate_result(transcript, **options)
        file.writelines(f"{start} --> {end}\n{text}\n\n" for start, end, text in cues)


class WriteSRT(SubtitlesWriter):
    """SubRip: numbered cues timed ``HH:MM:SS,mmm``."""

    extension = "srt"
    always_include_hours = True
    decimal_marker = ","

    def _write(self, transcript: Transcript, file: TextIO, options: dict[str, Any]) -> None:
        cues = enumerate(self.iterate_result(transcript, **options), start=1)
        file.writelines(f"{number}\n{start} --> {end}\n{text}\n\n" for number, (start, end, text) in cues)


class WriteTSV(ResultWriter):
    """``start<TAB>end<TAB>text`` lines after that header; times in integer milliseconds (no locale can turn
    their decimal point into a comma). Tabs and line breaks in the text become spaces."""

    extension = "tsv"

    def _write(self, transcript: Transcript, file: TextIO, options: dict[str, Any]) -> None:
        file.write("start\tend\ttext\n")
        for segment in transcript.segments:
            text = " ".join(segment.text.strip().replace("\t", " ").splitlines())
            file.write(f"{round(1000 * segment.start)}\t{round(1000 * segment.end)}\t{text}\n")


class WriteJSON(ResultWriter):
    """openai-whisper's result dict as JSON on one line, non-ASCII characters written as they are."""

    extension = "json"

    def _write(self, transcript: Transcript, file: TextIO, options: dict[str, Any]) -> None:
        json.dump(transcript.to_dict(), file, ensure_ascii=False)


WRITERS: dict[str, type[ResultWriter]] = {
    "txt": WriteTXT,
    "vtt": WriteVTT,
    "srt": WriteSRT,
    "tsv": WriteTSV,
    "json": WriteJSON,
}


class WriteAll(ResultWriter):
    """Every format: `write_to_dir` writes one file per format. One stream cannot hold them all, so
    `write` and `to_string` raise BadRequest."""

    extension = "all"

    def __init__(self) -> None:
        self.writers: list[ResultWriter] = [writer() for writer in WRITERS.values()]

    def write_to_dir(self, transcript: Transcript, audio_path: str | Path, output_dir: str | Path,
                     **options: Any) -> list[Path]:
        _check_options(options)
        return [path for writer in self.writers
                for path in writer.write_to_dir(transcript, audio_path, output_dir, **options)]

    def _write(self, transcript: Transcript, file: TextIO, options: dict[str, Any]) -> None:
        raise BadRequest("output format 'all' writes one file per format and cannot write to one stream")


def _format_choices() -> str:
    return ", ".join([*WRITERS, "all"])


def get_writer(fmt: str) -> ResultWriter:
    """The writer for a format name (txt, vtt, srt, tsv, json, or all; any case)."""
    name = fmt.strip().lower() if isinstance(fmt, str) else fmt
    if name == "all":
        return WriteAll()
    if name not in WRITERS:
        raise BadRequest(f"unknown output format {fmt!r}; choose one of {_format_choices()}")
    return WRITERS[name]()


def write_outputs(transcript: Transcript, audio_path: str | Path, formats: list[str], output_dir: str | Path,
                  **options: Any) -> list[Path]:
    """Write ``<output_dir>/<stem>.<ext>`` for each format (``all`` meaning every one; repeats written once),
    creating output_dir. Formats and options are all checked before any file is written. The paths written,
    in the order of ``formats``."""
    writers: dict[str, ResultWriter] = {}
    for fmt in formats:
        writer = get_writer(fmt)
        for one in writer.writers if isinstance(writer, WriteAll) else [writer]:
            writers.setdefault(one.extension, one)
    _check_options(options)
    paths: list[Path] = []
    for writer in writers.values():
        paths.extend(writer.write_to_dir(transcript, audio_path, output_dir, **options))
    return paths
