"""How far llama.cpp moves from its own golden outputs when only a harmless setting changes.

Where `llama_cpp` (llama-cpp-python, built once in a separate venv for measuring; never a dependency) can be
imported, this evaluates the golden prompts of ../shared/golden under llama.cpp's default settings and a few
variants (flash attention, token-by-token prefill, f32 K cache) and prints, for each, max |Δlogit| over the golden
top-10 ids, top-1 agreement and how many 48-token greedy continuations stay equal. It puts camelid's figures in
scale: llama.cpp quantizes activations to 8 bits, so a different float order alone moves its logits by ~0.6-1.6.

    /path/to/peer-venv/bin/python benchmarks/llamacpp_self_agreement.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "golden"
MODELS = {"smollm2-135m-q4_1": "smollm2:135m", "gemma-3-270m-q4_k_m": "gemma3:270m"}
VARIANTS = [{}, {"flash_attn": True}, {"n_batch": 1}, {"type_k": 0}]  # type_k 0 = GGML_TYPE_F32


def evaluate(model_path: str, golden: dict, settings: dict) -> str:
    import numpy as np
    from llama_cpp import Llama

    llm = Llama(model_path=model_path, logits_all=True, n_ctx=512, verbose=False, **settings)
    worst, top1, positions, greedy_equal = 0.0, 0, 0, 0
    for prompt in golden["prompts"]:
        llm.reset()
        llm.eval(prompt["ids"])
        scores = np.array(llm.scores[: len(prompt["ids"])])
        for position, ref in enumerate(prompt["topk_per_position"]):
            worst = max(worst, float(np.abs(scores[position, ref["ids"]] - np.array(ref["logits"])).max()))
            top1 += int(scores[position].argmax() == ref["ids"][0])
            positions += 1
        tokens = []
        for token in llm.generate(prompt["ids"], temp=0.0, top_k=1, repeat_penalty=1.0):
            tokens.append(token)
            if len(tokens) == len(prompt["greedy_ids"]):
                break
        greedy_equal += tokens == prompt["greedy_ids"]
    return (f"max |Δlogit| {worst:.4f}  top-1 {top1}/{positions}  greedy equal "
            f"{greedy_equal}/{len(golden['prompts'])}")


def main() -> int:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        print("llama_cpp is not importable here: run this with the peer venv's python")
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from camelid.store import resolve_model

    for stem, name in MODELS.items():
        golden = json.loads((GOLDEN / f"{stem}.llamacpp.json").read_text())
        path = str(resolve_model(name))
        for settings in VARIANTS:
            print(f"{name:14} {json.dumps(settings):22} {evaluate(path, golden, settings)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
