"""Real-time factor of camelid's Whisper and of faster-whisper on the same clip, the same CTranslate2 model and the
same threads, in one run (RTF = processing seconds / audio seconds; lower is faster).

    python benchmarks/speech.py [CLIP.wav] [-m whisper:tiny.en] [-t 2] [--beam-size 5]

Without a clip, synthesizes ~60 s of speech with Festival (`text2wave`, voice cmu_us_slt_arctic_hts).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEXT = (
    "The camel is a large animal that lives in the deserts of Africa and Asia. It can walk for many days without "
    "drinking water, because its body uses water very carefully. People have travelled with camels for thousands "
    "of years, carrying salt, spices and cloth across the sand. A camel has long legs, a long neck and thick lips "
    "that let it eat dry and thorny plants. Its wide feet do not sink into the sand, and two rows of long "
    "eyelashes keep the dust out of its eyes. The hump stores fat, not water, and gives the animal energy when "
    "food is scarce. Today camels still help people in many places, and they are also raced for sport. In some "
    "countries camel milk is sold in shops, and it is said to be rich and healthy. Camels are calm and patient, "
    "but they can also be stubborn when they are tired or hungry."
)


def synthesize(folder: Path) -> Path:
    clip = folder / "speech.wav"
    subprocess.run(["text2wave", "-eval", "(voice_cmu_us_slt_arctic_hts)", "-o", str(clip)], input=TEXT, text=True,
                   check=True, capture_output=True)
    return clip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clip", nargs="?")
    parser.add_argument("-m", "--model", default="whisper:tiny.en")
    parser.add_argument("-t", "--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--beam-size", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import torch

    from camelid.speech.audio import SAMPLE_RATE, load_audio
    from camelid.speech.service import load_speech_model
    from camelid.store import resolve

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        clip = Path(args.clip) if args.clip else synthesize(Path(scratch))
        audio = load_audio(clip)
        seconds = len(audio) / SAMPLE_RATE
        speech = load_speech_model(args.model)
        speech.transcribe(audio[: SAMPLE_RATE * 5], beam_size=args.beam_size)  # warm-up
        start = time.perf_counter()
        ours = speech.transcribe(audio, beam_size=args.beam_size)
        camelid_s = time.perf_counter() - start
        from faster_whisper import WhisperModel

        folder = Path(scratch) / "ct2"
        folder.mkdir()
        for name, path in resolve(args.model).files.items():
            (folder / name).symlink_to(path)
        peer = WhisperModel(str(folder), device="cpu", compute_type="float32", cpu_threads=args.threads)
        list(peer.transcribe(audio[: SAMPLE_RATE * 5], beam_size=args.beam_size)[0])
        start = time.perf_counter()
        segments, _ = peer.transcribe(audio, beam_size=args.beam_size, language="en" if ".en" in args.model else None)
        theirs = " ".join(s.text.strip() for s in segments)
        peer_s = time.perf_counter() - start
    print(f"{args.model}, {seconds:.1f} s of audio, {args.threads} threads, beam {args.beam_size}")
    print(f"  camelid        RTF {camelid_s / seconds:.3f} ({camelid_s:.2f} s)")
    print(f"  faster-whisper RTF {peer_s / seconds:.3f} ({peer_s:.2f} s)")
    print(f"  ratio faster-whisper / camelid time = {peer_s / camelid_s:.2f} (above 1: camelid faster)")
    print(f"  camelid:        {ours.text.strip()[:160]}")
    print(f"  faster-whisper: {theirs[:160]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
