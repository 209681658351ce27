"""Tokenizers identical to llama.cpp's, built from GGUF metadata, plus streaming decode and chat templates.

- `Tokenizer.from_metadata(md)`: byte-level BPE ("gpt2", with llama.cpp's per-`tokenizer.ggml.pre` regexes) and
  SentencePiece ("llama", score-ordered merges with byte fallback); special-token parsing as llama.cpp.
- `IncrementalDecoder`: streaming text that never splits a UTF-8 character.
- `render_chat`: Jinja chat templates in a sandbox, HF-compatible; ChatML when the model has none.
"""

from camelid.tokenizer.chat import CHATML_TEMPLATE, render_chat
from camelid.tokenizer.pretokenize import SUPPORTED_PRE
from camelid.tokenizer.stream import IncrementalDecoder
from camelid.tokenizer.tokenizer import Tokenizer

__all__ = ["CHATML_TEMPLATE", "SUPPORTED_PRE", "IncrementalDecoder", "Tokenizer", "render_chat"]
