"""Transcription writers: exact TXT/SRT/VTT/TSV/JSON output, openai-whisper's subtitle options, and every
SRT/VTT written here parsed back by a strict parser to prove it is well formed."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from camelid.errors import BadRequest
from camelid.speech.writers import (
    WRITERS,
    ResultWriter,
    Segment,
    SubtitlesWriter,
    Transcript,
    Word,
    WriteAll,
    WriteJSON,
    WriteSRT,
    WriteTSV,
    WriteTXT,
    WriteVTT,
    format_timestamp,
    get_writer,
    write_outputs,
)

# --- a strict SRT / WebVTT parser -------------------------------------------------------------------------


@dataclass
class Cue:
    start_ms: int
    end_ms: int
    text: str


_SRT_TIME = r"(\d{2,}):([0-5]\d):([0-5]\d),(\d{3})"
_VTT_TIME = r"(?:(\d{2,}):)?([0-5]\d):([0-5]\d)\.(\d{3})"


def _ms(hours: str | None, minutes: str, seconds: str, millis: str) -> int:
    return ((int(hours or 0) * 60 + int(minutes)) * 60 + int(seconds)) * 1000 + int(millis)


def _parse_cues(body: str, time_pattern: str, numbered: bool, hours_only_when_needed: bool) -> list[Cue]:
    assert "\r" not in body and "\t" not in body
    if body == "":
        return []
    assert body.endswith("\n\n") and not body.endswith("\n\n\n"), "each cue ends with exactly one blank line"
    cues: list[Cue] = []
    for number, block in enumerate(body[:-2].split("\n\n"), start=1):
        lines = block.split("\n")
        if numbered:
            assert lines.pop(0) == str(number), f"cue {number} is not numbered {number}: {block!r}"
        timing = re.fullmatch(f"{time_pattern} --> {time_pattern}", lines[0])
        assert timing, f"bad timing line {lines[0]!r}"
        start, end = _ms(*timing.groups()[:4]), _ms(*timing.groups()[4:])
        if hours_only_when_needed:
            assert (timing.group(1) is not None) == (start >= 3_600_000), lines[0]
            assert (timing.group(5) is not None) == (end >= 3_600_000), lines[0]
        assert start <= end, lines[0]
        assert not cues or cues[-1].start_ms <= start, "cues out of order"
        text_lines = lines[1:]
        assert text_lines, f"cue without text: {block!r}"
        assert all(line.strip() for line in text_lines), f"blank text line: {block!r}"
        assert not any("-->" in line for line in text_lines), f"'-->' in cue text: {block!r}"
        cues.append(Cue(start, end, "\n".join(text_lines)))
    return cues


def parse_srt(text: str) -> list[Cue]:
    return _parse_cues(text, _SRT_TIME, numbered=True, hours_only_when_needed=False)


def parse_vtt(text: str) -> list[Cue]:
    assert text.startswith("WEBVTT\n\n"), "missing WEBVTT header and blank line"
    return _parse_cues(text[len("WEBVTT\n\n"):], _VTT_TIME, numbered=False, hours_only_when_needed=True)


def srt(transcript: Transcript, **options: object) -> str:
    """The SRT text, checked well formed."""
    text = WriteSRT().to_string(transcript, **options)
    parse_srt(text)
    return text


def vtt(transcript: Transcript, **options: object) -> str:
    """The VTT text, checked well formed."""
    text = WriteVTT().to_string(transcript, **options)
    parse_vtt(text)
    return text


def test_the_parser_is_strict() -> None:
    good = "1\n00:00:00,000 --> 00:00:01,000\nHi\n\n"
    assert parse_srt(good) == [Cue(0, 1000, "Hi")]
    for bad in (
        "1\n00:00:00.000 --> 00:00:01,000\nHi\n\n",  # dot in SRT
        "1\n00:00,000 --> 00:00:01,000\nHi\n\n",  # no hours in SRT
        "2\n00:00:00,000 --> 00:00:01,000\nHi\n\n",  # numbering
        "1\n00:00:00,000 --> 00:00:01,000\n\n\n",  # no text
        "1\n00:00:00,000 --> 00:00:01,000\nA --> B\n\n",  # arrow in text
        "1\n00:00:00,000 --> 00:00:01,000\nHi\n",  # no blank line after the cue
        "1\n00:00:02,000 --> 00:00:01,000\nHi\n\n",  # end before start
    ):
        with pytest.raises(AssertionError):
            parse_srt(bad)
    with pytest.raises(AssertionError):
        parse_vtt("WEBVTT\n\n00:00:00.000 --> 00:01.000\nHi\n\n")  # hours below one hour
    with pytest.raises(AssertionError):
        parse_vtt("00:00.000 --> 00:01.000\nHi\n\n")  # no header


# --- a hand-made transcript -------------------------------------------------------------------------------

SEGMENT_TEXTS = [" Hello world.", " Zero-length.", "  Ünïcödé — 日本語 🎉 ", " A --> B, C ---> D", " Past the hour."]


def make_transcript() -> Transcript:
    times = [(0.0, 2.5), (2.5, 2.5), (3.0004, 7.9996), (65.25, 70.125), (3599.9996, 3723.4567)]
    segments = [
        Segment(id=i, start=start, end=end, text=text)
        for i, ((start, end), text) in enumerate(zip(times, SEGMENT_TEXTS, strict=True))
    ]
    return Transcript(text="".join(SEGMENT_TEXTS), segments=segments, language="en", duration=3725.0)


def test_srt_exact() -> None:
    assert srt(make_transcript()) == (
        "1\n00:00:00,000 --> 00:00:02,500\nHello world.\n\n"
        "2\n00:00:02,500 --> 00:00:02,500\nZero-length.\n\n"
        "3\n00:00:03,000 --> 00:00:08,000\nÜnïcödé — 日本語 🎉\n\n"
        "4\n00:01:05,250 --> 00:01:10,125\nA -> B, C -> D\n\n"
        "5\n01:00:00,000 --> 01:02:03,457\nPast the hour.\n\n"
    )


def test_vtt_exact() -> None:
    assert vtt(make_transcript()) == (
        "WEBVTT\n\n"
        "00:00.000 --> 00:02.500\nHello world.\n\n"
        "00:02.500 --> 00:02.500\nZero-length.\n\n"
        "00:03.000 --> 00:08.000\nÜnïcödé — 日本語 🎉\n\n"
        "01:05.250 --> 01:10.125\nA -> B, C -> D\n\n"
        "01:00:00.000 --> 01:02:03.457\nPast the hour.\n\n"
    )


def test_txt_exact() -> None:
    assert WriteTXT().to_string(make_transcript()) == (
        "Hello world.\nZero-length.\nÜnïcödé — 日本語 🎉\nA --> B, C ---> D\nPast the hour.\n"
    )


def test_tsv_exact() -> None:
    assert WriteTSV().to_string(make_transcript()) == (
        "start\tend\ttext\n"
        "0\t2500\tHello world.\n"
        "2500\t2500\tZero-length.\n"
        "3000\t8000\tÜnïcödé — 日本語 🎉\n"
        "65250\t70125\tA --> B, C ---> D\n"
        "3600000\t3723457\tPast the hour.\n"
    )


def test_tsv_keeps_one_line_per_segment() -> None:
    transcript = Transcript(text="", segments=[Segment(0, 0.0, 1.0, " a\tb\nc ")], language="en")
    assert WriteTSV().to_string(transcript) == "start\tend\ttext\n0\t1000\ta b c\n"


def test_json_is_openai_whispers_result_dict() -> None:
    transcript = make_transcript()
    text = WriteJSON().to_string(transcript)
    assert "日本語 🎉" in text and "\\u" not in text  # ensure_ascii=False
    assert json.loads(text) == {
        "text": "".join(SEGMENT_TEXTS),
        "segments": [
            {"id": 0, "start": 0.0, "end": 2.5, "text": " Hello world."},
            {"id": 1, "start": 2.5, "end": 2.5, "text": " Zero-length."},
            {"id": 2, "start": 3.0004, "end": 7.9996, "text": "  Ünïcödé — 日本語 🎉 "},
            {"id": 3, "start": 65.25, "end": 70.125, "text": " A --> B, C ---> D"},
            {"id": 4, "start": 3599.9996, "end": 3723.4567, "text": " Past the hour."},
        ],
        "language": "en",
    }


def full_segment_transcript() -> Transcript:
    words = [Word(0.0, 0.5, " Grüß", 0.875), Word(0.5, 1.5, " dich.", 0.5)]
    segment = Segment(
        id=0, start=0.0, end=1.5, text=" Grüß dich.", words=words, seek=0, tokens=[50364, 123, 50439],
        temperature=0.0, avg_logprob=-0.25, compression_ratio=0.75, no_speech_prob=0.125,
    )
    return Transcript(text=" Grüß dich.", segments=[segment], language="de", duration=1.5)


def test_json_exact_with_every_segment_field() -> None:
    assert WriteJSON().to_string(full_segment_transcript()) == (
        '{"text": " Grüß dich.", "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": 1.5, '
        '"text": " Grüß dich.", "tokens": [50364, 123, 50439], "temperature": 0.0, "avg_logprob": -0.25, '
        '"compression_ratio": 0.75, "no_speech_prob": 0.125, "words": [{"word": " Grüß", "start": 0.0, '
        '"end": 0.5, "probability": 0.875}, {"word": " dich.", "start": 0.5, "end": 1.5, "probability": 0.5}]}], '
        '"language": "de"}'
    )


@pytest.mark.parametrize("make", [make_transcript, full_segment_transcript])
def test_json_round_trips(make) -> None:
    transcript = make()
    back = Transcript.from_dict(json.loads(WriteJSON().to_string(transcript)))
    transcript.duration = None  # not part of openai-whisper's JSON
    assert back == transcript


def test_empty_transcript() -> None:
    empty = Transcript(text="", segments=[], language="en")
    assert srt(empty) == ""
    assert vtt(empty) == "WEBVTT\n\n"
    assert WriteTXT().to_string(empty) == ""
    assert WriteTSV().to_string(empty) == "start\tend\ttext\n"
    assert WriteJSON().to_string(empty) == '{"text": "", "segments": [], "language": "en"}'


# --- timestamps -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "hours", "marker", "expected"),
    [
        (0.0, False, ".", "00:00.000"),
        (0.0, True, ",", "00:00:00,000"),
        (1.5, False, ".", "00:01.500"),
        (0.0004, False, ".", "00:00.000"),
        (0.0006, False, ".", "00:00.001"),
        (59.9996, False, ".", "01:00.000"),  # rounding carries into the minutes
        (3599.9996, False, ".", "01:00:00.000"),  # and into the hours, which then appear
        (3661.5, True, ",", "01:01:01,500"),
        (3661.5, False, ".", "01:01:01.500"),
        (360_000.0, False, ".", "100:00:00.000"),
    ],
)
def test_format_timestamp(seconds: float, hours: bool, marker: str, expected: str) -> None:
    assert format_timestamp(seconds, hours, marker) == expected


def test_format_timestamp_defaults_and_bad_values() -> None:
    assert format_timestamp(61.25) == "01:01.250"
    for bad in (-0.001, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            format_timestamp(bad)


def test_hours_always_in_srt_and_only_from_one_hour_in_vtt() -> None:
    starts = [0.0, 59.0, 599.5, 3599.4, 3599.5, 3600.0, 7322.25, 36_000.0]
    segments = [Segment(i, start, start + 0.25, f" cue {i}") for i, start in enumerate(starts)]
    transcript = Transcript(text="", segments=segments, language="en")
    srt_text, vtt_text = srt(transcript), vtt(transcript)
    srt_timings = [line for line in srt_text.splitlines() if "-->" in line]
    vtt_timings = [line for line in vtt_text.splitlines() if "-->" in line]
    assert all(re.fullmatch(f"{_SRT_TIME} --> {_SRT_TIME}", line) for line in srt_timings)
    assert vtt_timings[:4] == [
        "00:00.000 --> 00:00.250",
        "00:59.000 --> 00:59.250",
        "09:59.500 --> 09:59.750",
        "59:59.400 --> 59:59.650",
    ]
    assert vtt_timings[4:] == [
        "59:59.500 --> 59:59.750",
        "01:00:00.000 --> 01:00:00.250",
        "02:02:02.250 --> 02:02:02.500",
        "10:00:00.000 --> 10:00:00.250",
    ]
    assert srt_timings[3:5] == ["00:59:59,400 --> 00:59:59,650", "00:59:59,500 --> 00:59:59,750"]
    assert [cue.start_ms for cue in parse_srt(srt_text)] == [cue.start_ms for cue in parse_vtt(vtt_text)]


def test_cue_text_never_breaks_the_file() -> None:
    segments = [
        Segment(0, 0.0, 1.0, "   "),  # nothing to show: no cue
        Segment(1, 1.0, 2.0, " first\n\n  \nsecond "),  # a blank line would end the cue
        Segment(2, 2.0, 3.0, " a ----> b -->"),
    ]
    transcript = Transcript(text="", segments=segments, language="en")
    assert srt(transcript) == (
        "1\n00:00:01,000 --> 00:00:02,000\nfirst\nsecond\n\n"
        "2\n00:00:02,000 --> 00:00:03,000\na -> b ->\n\n"
    )
    assert [cue.text for cue in parse_vtt(vtt(transcript))] == ["first\nsecond", "a -> b ->"]


def test_srt_and_vtt_differ_only_by_two_attributes() -> None:
    assert issubclass(WriteSRT, SubtitlesWriter) and issubclass(WriteVTT, SubtitlesWriter)
    assert (WriteSRT.always_include_hours, WriteSRT.decimal_marker) == (True, ",")
    assert (WriteVTT.always_include_hours, WriteVTT.decimal_marker) == (False, ".")


# --- word timings -----------------------------------------------------------------------------------------


def word_transcript() -> Transcript:
    first = [Word(0.0, 0.5, " The"), Word(0.5, 1.0, " quick"), Word(1.2, 1.8, " brown"), Word(1.8, 3.0, " fox")]
    second = [Word(10.0, 11.0, " jumps"), Word(11.0, 12.0, " over")]
    segments = [
        Segment(0, 0.0, 3.0, " The quick brown fox", words=first),
        Segment(1, 10.0, 12.0, " jumps over", words=second),
    ]
    return Transcript(text=" The quick brown fox jumps over", segments=segments, language="en")


def test_word_timings_make_one_cue_per_segment_by_default() -> None:
    assert srt(word_transcript()) == (
        "1\n00:00:00,000 --> 00:00:03,000\nThe quick brown fox\n\n"
        "2\n00:00:10,000 --> 00:00:12,000\njumps over\n\n"
    )


def test_max_words_per_line() -> None:
    assert srt(word_transcript(), max_words_per_line=2) == (
        "1\n00:00:00,000 --> 00:00:01,000\nThe quick\n\n"
        "2\n00:00:01,200 --> 00:00:03,000\nbrown fox\n\n"
        "3\n00:00:10,000 --> 00:00:12,000\njumps over\n\n"
    )
    assert [cue.text for cue in parse_vtt(vtt(word_transcript(), max_words_per_line=3))] == [
        "The quick brown", "fox", "jumps over",
    ]


def test_highlight_words_srt() -> None:
    assert srt(word_transcript(), highlight_words=True) == (
        "1\n00:00:00,000 --> 00:00:00,500\n<u>The</u> quick brown fox\n\n"
        "2\n00:00:00,500 --> 00:00:01,000\nThe <u>quick</u> brown fox\n\n"
        "3\n00:00:01,000 --> 00:00:01,200\nThe quick brown fox\n\n"  # the gap before "brown"
        "4\n00:00:01,200 --> 00:00:01,800\nThe quick <u>brown</u> fox\n\n"
        "5\n00:00:01,800 --> 00:00:03,000\nThe quick brown <u>fox</u>\n\n"
        "6\n00:00:10,000 --> 00:00:11,000\n<u>jumps</u> over\n\n"
        "7\n00:00:11,000 --> 00:00:12,000\njumps <u>over</u>\n\n"
    )


def test_highlight_words_vtt_with_line_breaks() -> None:
    assert vtt(word_transcript(), highlight_words=True, max_line_width=10, max_words_per_line=None) == (
        "WEBVTT\n\n"
        "00:00.000 --> 00:00.500\n<u>The</u> quick\nbrown fox\n\n"
        "00:00.500 --> 00:01.000\nThe <u>quick</u>\nbrown fox\n\n"
        "00:01.000 --> 00:01.200\nThe quick\nbrown fox\n\n"
        "00:01.200 --> 00:01.800\nThe quick\n<u>brown</u> fox\n\n"
        "00:01.800 --> 00:03.000\nThe quick\nbrown <u>fox</u>\n\n"
        "00:10.000 --> 00:11.000\n<u>jumps</u> over\n\n"
        "00:11.000 --> 00:12.000\njumps <u>over</u>\n\n"
    )


def test_max_line_width_wraps_within_segments() -> None:
    assert srt(word_transcript(), max_line_width=10) == (
        "1\n00:00:00,000 --> 00:00:03,000\nThe quick\nbrown fox\n\n"
        "2\n00:00:10,000 --> 00:00:12,000\njumps over\n\n"
    )


def test_max_line_width_and_count_split_cues() -> None:
    assert srt(word_transcript(), max_line_width=10, max_line_count=1) == (
        "1\n00:00:00,000 --> 00:00:01,000\nThe quick\n\n"
        "2\n00:00:01,200 --> 00:00:03,000\nbrown fox\n\n"
        "3\n00:00:10,000 --> 00:00:12,000\njumps over\n\n"
    )
    # with room for everything a pause of more than 3 seconds still starts a new cue
    assert srt(word_transcript(), max_line_width=40, max_line_count=2) == (
        "1\n00:00:00,000 --> 00:00:03,000\nThe quick brown fox\n\n"
        "2\n00:00:10,000 --> 00:00:12,000\njumps over\n\n"
    )


def test_line_width_and_count_merge_close_segments() -> None:
    segments = [
        Segment(0, 0.0, 1.0, " Hi there.", words=[Word(0.0, 0.5, " Hi"), Word(0.5, 1.0, " there.")]),
        Segment(1, 1.2, 2.0, " How are you?",
                words=[Word(1.2, 1.5, " How"), Word(1.5, 1.7, " are"), Word(1.7, 2.0, " you?")]),
    ]
    transcript = Transcript(text="", segments=segments, language="en")
    assert srt(transcript, max_line_width=42, max_line_count=1) == (
        "1\n00:00:00,000 --> 00:00:02,000\nHi there. How are you?\n\n"
    )
    assert srt(transcript, max_line_width=10, max_line_count=2) == (
        "1\n00:00:00,000 --> 00:00:01,700\nHi there.\nHow are\n\n"
        "2\n00:00:01,700 --> 00:00:02,000\nyou?\n\n"
    )


SENTENCE = (
    "the rain in spain stays mainly in the plain while in hartford hereford and hampshire "
    "hurricanes hardly ever happen said the professor to his somewhat puzzled student"
)


def test_wrapping_keeps_every_word_in_order_within_the_limits() -> None:
    sentence = SENTENCE.split()
    words = [Word(i * 0.4, i * 0.4 + 0.3, " " + w) for i, w in enumerate(sentence)]
    transcript = Transcript(text="", segments=[Segment(0, 0.0, 20.0, "", words=words)], language="en")
    for width, count in [(20, 2), (12, 1), (30, 3)]:
        cues = parse_srt(srt(transcript, max_line_width=width, max_line_count=count))
        assert len(cues) > 1
        for cue in cues:
            lines = cue.text.split("\n")
            assert len(lines) <= count
            assert all(len(line) <= width for line in lines), (width, lines)
        assert " ".join(cue.text.replace("\n", " ") for cue in cues).split() == sentence
        vtt_cues = parse_vtt(vtt(transcript, max_line_width=width, max_line_count=count))
        assert [cue.text for cue in vtt_cues] == [cue.text for cue in cues]


def test_arrow_in_words_is_replaced() -> None:
    words = [Word(0.0, 1.0, " A"), Word(1.0, 2.0, " -->"), Word(2.0, 3.0, " B")]
    transcript = Transcript(text="", segments=[Segment(0, 0.0, 3.0, " A --> B", words=words)], language="en")
    assert srt(transcript) == "1\n00:00:00,000 --> 00:00:03,000\nA -> B\n\n"
    assert [cue.text for cue in parse_srt(srt(transcript, highlight_words=True))] == [
        "<u>A</u> -> B", "A <u>-></u> B", "A -> <u>B</u>",
    ]


def test_word_options_are_ignored_without_word_timings() -> None:
    # as openai-whisper's writers do (its CLI refuses the options without --word_timestamps)
    transcript = make_transcript()
    assert srt(transcript, max_line_width=5, max_line_count=1, highlight_words=True, max_words_per_line=1) == (
        srt(transcript)
    )


# --- options, get_writer, write_outputs -------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"max_line_widht": 10},
        {"max_line_width": 0},
        {"max_line_count": -1},
        {"max_words_per_line": 2.5},
        {"max_line_width": True},
        {"highlight_words": "yes"},
    ],
)
@pytest.mark.parametrize("writer", [WriteSRT, WriteVTT, WriteTXT, WriteTSV, WriteJSON])
def test_bad_options(writer: type[ResultWriter], options: dict) -> None:
    with pytest.raises(BadRequest):
        writer().to_string(word_transcript(), **options)


def test_unknown_option_names_the_choices() -> None:
    with pytest.raises(BadRequest, match="max_line_width, max_line_count, highlight_words, max_words_per_line"):
        WriteSRT().to_string(word_transcript(), max_line_widht=10)


def test_get_writer() -> None:
    assert set(WRITERS) == {"txt", "srt", "vtt", "json", "tsv"}
    for name, cls in WRITERS.items():
        writer = get_writer(name)
        assert type(writer) is cls and writer.extension == name
    assert isinstance(get_writer(" SRT "), WriteSRT)
    assert isinstance(get_writer("all"), WriteAll)


@pytest.mark.parametrize("fmt", ["xml", "", "srt,vtt", "ALLL"])
def test_get_writer_unknown_format(fmt: str) -> None:
    with pytest.raises(BadRequest, match="txt, vtt, srt, tsv, json, all") as err:
        get_writer(fmt)
    assert repr(fmt) in str(err.value)


def test_all_writer_cannot_write_one_stream() -> None:
    with pytest.raises(BadRequest, match="one file per format"):
        get_writer("all").to_string(make_transcript())


def test_all_writer_writes_each_format(tmp_path: Path) -> None:
    paths = get_writer("all").write_to_dir(word_transcript(), "/audio/clip.wav", tmp_path, max_words_per_line=2)
    assert [p.name for p in paths] == ["clip.txt", "clip.vtt", "clip.srt", "clip.tsv", "clip.json"]
    assert (tmp_path / "clip.srt").read_text(encoding="utf-8") == srt(word_transcript(), max_words_per_line=2)


def test_write_outputs(tmp_path: Path) -> None:
    out = tmp_path / "new" / "dir"
    transcript = make_transcript()
    paths = write_outputs(transcript, "/some/where/talk.final.wav", ["srt", "txt", "SRT", "json"], str(out))
    assert paths == [out / "talk.final.srt", out / "talk.final.txt", out / "talk.final.json"]
    assert sorted(p.name for p in out.iterdir()) == ["talk.final.json", "talk.final.srt", "talk.final.txt"]
    srt_bytes = (out / "talk.final.srt").read_bytes()
    assert b"\r" not in srt_bytes
    assert srt_bytes.decode("utf-8") == srt(transcript)
    assert parse_srt(srt_bytes.decode("utf-8"))[2].text == "Ünïcödé — 日本語 🎉"
    assert (out / "talk.final.txt").read_text(encoding="utf-8") == WriteTXT().to_string(transcript)
    json_bytes = (out / "talk.final.json").read_bytes()
    assert "日本語 🎉".encode() in json_bytes
    assert json.loads(json_bytes.decode("utf-8")) == transcript.to_dict()


def test_write_outputs_all(tmp_path: Path) -> None:
    transcript = word_transcript()
    paths = write_outputs(transcript, Path("rec.mp3"), ["all", "vtt"], tmp_path, highlight_words=True)
    assert [p.name for p in paths] == ["rec.txt", "rec.vtt", "rec.srt", "rec.tsv", "rec.json"]
    contents = {p.suffix: p.read_text(encoding="utf-8") for p in paths}
    assert contents[".vtt"] == vtt(transcript, highlight_words=True)
    assert contents[".srt"] == srt(transcript, highlight_words=True)
    assert len(parse_srt(contents[".srt"])) == 7
    assert contents[".tsv"] == WriteTSV().to_string(transcript)


def test_write_outputs_checks_everything_before_writing(tmp_path: Path) -> None:
    with pytest.raises(BadRequest, match="unknown output format 'docx'"):
        write_outputs(make_transcript(), "a.wav", ["srt", "docx"], tmp_path)
    with pytest.raises(BadRequest):
        write_outputs(make_transcript(), "a.wav", ["txt", "srt"], tmp_path, max_line_width=0)
    assert list(tmp_path.iterdir()) == []
    assert write_outputs(make_transcript(), "a.wav", [], tmp_path) == []
