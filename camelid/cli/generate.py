"""`camelid generate -m FILE -p PROMPT ...`: raw text completion with llama.cpp's flags and defaults."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from camelid.cli.output import stream
from camelid.errors import BadRequest


def add_parser(sub: Any) -> None:
    p = sub.add_parser("generate", help="complete a prompt (llama.cpp flags)",
                       description="Complete PROMPT as raw text, in the manner of llama.cpp's CLI.")
    p.add_argument("-m", "--model", default=None, help="model name or .gguf path (default smollm2:135m)")
    p.add_argument("-p", "--prompt", default=None)
    p.add_argument("-f", "--file", default=None, help="read the prompt from a file")
    p.add_argument("-n", "--n-predict", type=int, default=-1, help="tokens to generate (-1 = until end)")
    p.add_argument("-t", "--threads", type=int, default=0)
    p.add_argument("-c", "--ctx-size", type=int, default=4096, help="context size (0 = the model's)")
    p.add_argument("-b", "--batch-size", type=int, default=512)
    p.add_argument("--temp", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=40)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--min-p", type=float, default=0.05)
    p.add_argument("--typical", type=float, default=1.0)
    p.add_argument("--repeat-penalty", type=float, default=1.0)
    p.add_argument("--repeat-last-n", type=int, default=64)
    p.add_argument("--presence-penalty", type=float, default=0.0)
    p.add_argument("--frequency-penalty", type=float, default=0.0)
    p.add_argument("-s", "--seed", type=int, default=-1)
    p.add_argument("-r", "--reverse-prompt", action="append", default=[], help="stop at this text")
    p.add_argument("--no-display-prompt", action="store_true", help="do not echo the prompt")
    p.add_argument("--json", action="store_true", help="print one JSON object with text and timings")
    p.set_defaults(handler=generate_command)


def generate_command(args: argparse.Namespace) -> int:
    import json

    import camelid

    prompt = args.prompt
    if args.file:
        try:
            prompt = Path(args.file).read_text(encoding="utf-8")
        except OSError as err:
            raise BadRequest(f"cannot read prompt file {args.file}: {err.strerror}") from None
    if prompt is None:
        raise BadRequest("no prompt: give -p PROMPT or -f FILE")
    load_options: dict[str, Any] = {"num_batch": args.batch_size}
    if args.threads > 0:
        load_options["num_thread"] = args.threads
    if args.ctx_size > 0:
        load_options["num_ctx"] = args.ctx_size
    llm = camelid.load(args.model, **load_options)
    answer = llm.generate(prompt, num_predict=args.n_predict, temperature=args.temp, top_k=args.top_k,
                          top_p=args.top_p, min_p=args.min_p, typical_p=args.typical,
                          repeat_penalty=args.repeat_penalty, repeat_last_n=args.repeat_last_n,
                          presence_penalty=args.presence_penalty, frequency_penalty=args.frequency_penalty,
                          seed=args.seed, stop=args.reverse_prompt)
    if args.json:
        text = answer.result()
        print(json.dumps({"prompt": prompt, "text": text, **(answer.stats.as_dict() if answer.stats else {})}))
        return 0
    if not args.no_display_prompt:
        sys.stdout.write(prompt)
    stream(answer)
    print()
    if answer.stats:
        s = answer.stats
        print(f"\nprompt eval: {s.prompt_eval_count} tokens, {s.prompt_tokens_per_second:.2f} tokens/s | "
              f"eval: {s.eval_count} tokens, {s.tokens_per_second:.2f} tokens/s | "
              f"total: {s.total_duration / 1e6:.0f} ms", file=sys.stderr)
    return 0
