"""`camelid transcribe FILE...`: Whisper speech-to-text into text and subtitle files, as whisper.cpp's CLI does."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from camelid.errors import BadRequest


def add_parser(sub: Any) -> None:
    p = sub.add_parser("transcribe", help="speech to text and subtitles with Whisper",
                       description="Transcribe audio or video files (WAV read directly; mp3, m4a, ogg, flac, video "
                                   "through PyAV) into text and subtitle files.")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("-m", "--model", default=None, help="whisper:tiny.en (default), whisper:base, or a model folder")
    p.add_argument("-o", "--output-format", default="txt,srt",
                   help="comma-separated: txt, srt, vtt, tsv, json, all (default txt,srt)")
    p.add_argument("--output-dir", default=".", help="where the files go (default: the current folder)")
    p.add_argument("-l", "--language", default="auto", help="language code, or auto to detect (default auto)")
    p.add_argument("--translate", action="store_true", help="translate into English (multilingual models)")
    p.add_argument("-t", "--threads", type=int, default=0, help="CPU threads (default: all this process may use)")
    p.add_argument("--beam-size", type=int, default=None, help="beam search width (default: greedy)")
    p.add_argument("--temperature", type=float, default=None, help="first decoding temperature (default 0)")
    p.add_argument("--prompt", default=None, help="initial prompt (spellings, names, style)")
    p.add_argument("--word-timestamps", action="store_true", help="word-level timings")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=transcribe_command)


def options_from(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {"task": "translate" if args.translate else "transcribe",
                               "language": None if args.language in ("auto", "") else args.language}
    if args.beam_size:
        options["beam_size"] = args.beam_size
    if args.temperature is not None:
        options["temperature"] = args.temperature
    if args.prompt:
        options["initial_prompt"] = args.prompt
    if args.word_timestamps:
        options["word_timestamps"] = True
    return options


def transcribe_command(args: argparse.Namespace) -> int:
    import torch

    from camelid import config
    from camelid.cli.progress import PullProgress
    from camelid.speech.service import load_speech_model
    from camelid.speech.writers import write_outputs

    formats = [f.strip().lower() for f in args.output_format.split(",") if f.strip()]
    if not formats:
        raise BadRequest("no output format given")
    missing = [f for f in args.files if not Path(f).exists()]
    if missing:
        raise BadRequest(f"no such file: {missing[0]}")
    torch.set_num_threads(args.threads if args.threads > 0 else config.default_threads())
    with PullProgress() as progress:
        speech = load_speech_model(args.model, report=progress)
    options = options_from(args)
    for file in args.files:
        transcript = speech.transcribe(file, progress=None if args.no_progress else progress_bar(file), **options)
        paths = write_outputs(transcript, file, formats, args.output_dir)
        print(transcript.text.strip())
        print("wrote " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 0


def progress_bar(file: str) -> Any:
    """A callback(done_seconds, total_seconds) drawing a rich progress bar on a terminal."""
    if not sys.stderr.isatty():
        return None
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn(f"{Path(file).name}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                   TimeRemainingColumn(), transient=True)
    state: dict[str, Any] = {}

    def update(done: float, total: float) -> None:
        if "task" not in state:
            bar.start()
            state["task"] = bar.add_task("", total=total)
        bar.update(state["task"], completed=done, total=total)
        if done >= total:
            bar.stop()

    return update
