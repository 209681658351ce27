"""Dump llama.cpp's intermediate tensors for one prompt, to check camelid op by op against them.

Run with the python of a separate venv where llama-cpp-python is installed (never a camelid dependency):

    /path/to/peer-venv/bin/python benchmarks/llamacpp_intermediates.py MODEL.gguf "[504, 3575, 282]" out.npz

It registers llama.cpp's graph-evaluation callback (`cb_eval`) and copies every contiguous float32 tensor the
CPU backend computes (named as llama.cpp names them: `norm-0`, `attn_norm-0`, `Qcur-0`, `kq_soft_max-0`, ...; a
repeated name gets `#1`, `#2`) into an .npz, plus `out.npz.order.json` with (name, ggml op, ne) in graph order.
With flash attention off and the whole prompt in one batch this is the configuration of ../shared/golden.
"""

from __future__ import annotations

import ctypes
import json
import sys

import numpy as np


class GGMLTensor(ctypes.Structure):
    """The leading fields of ggml's `struct ggml_tensor` (layout of ggml as vendored by llama-cpp-python 0.3.x)."""

    _fields_ = [("type", ctypes.c_int32), ("buffer", ctypes.c_void_p), ("ne", ctypes.c_int64 * 4),
                ("nb", ctypes.c_size_t * 4), ("op", ctypes.c_int32), ("op_params", ctypes.c_int32 * 16),
                ("flags", ctypes.c_int32), ("src", ctypes.c_void_p * 10), ("view_src", ctypes.c_void_p),
                ("view_offs", ctypes.c_size_t), ("data", ctypes.c_void_p), ("name", ctypes.c_char * 64)]


def main() -> int:
    from llama_cpp import Llama
    from llama_cpp import llama_cpp as lib

    model_path, ids, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    dumps: dict[str, np.ndarray] = {}
    order: list[tuple[str, int, list[int]]] = []

    @lib.ggml_backend_sched_eval_callback
    def capture(tensor_pointer, ask, user_data):  # type: ignore[no-untyped-def]
        tensor = ctypes.cast(tensor_pointer, ctypes.POINTER(GGMLTensor)).contents
        if ask or tensor.type != 0 or not tensor.data:  # 0 = GGML_TYPE_F32
            return True
        ne, nb = list(tensor.ne), list(tensor.nb)
        count = ne[0] * ne[1] * ne[2] * ne[3]
        if nb[0] == 4 and nb[1] == 4 * ne[0] and nb[2] == nb[1] * ne[1]:
            values = np.ctypeslib.as_array(ctypes.cast(tensor.data, ctypes.POINTER(ctypes.c_float)), (count,))
            name = key = tensor.name.decode(errors="replace")
            repeat = 1
            while key in dumps:
                key, repeat = f"{name}#{repeat}", repeat + 1
            dumps[key] = values.copy().reshape(ne[::-1]).squeeze()
            order.append((key, tensor.op, ne))
        return True

    llm = Llama(model_path=model_path, logits_all=True, n_ctx=512, verbose=False, flash_attn=False)
    params = llm.context_params
    params.cb_eval = capture
    context = lib.llama_init_from_model(llm.model, params)
    batch = lib.llama_batch_init(len(ids), 0, 1)
    batch.n_tokens = len(ids)
    for i, token in enumerate(ids):
        batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = token, i, 1, True
        batch.seq_id[i][0] = 0
    if lib.llama_decode(context, batch) != 0:
        print("llama_decode failed")
        return 1
    np.savez(out, **{key.replace("/", "_"): value for key, value in dumps.items()})
    with open(out + ".order.json", "w") as fh:
        json.dump(order, fh)
    print(f"{len(dumps)} tensors -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
