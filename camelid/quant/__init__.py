"""ggml tensor types: one self-registering class per format, and vectorized torch dequantization.

Supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K. Results are
bit-identical to ``gguf.quants.dequantize`` (numpy reference).

    from camelid.quant import dequantize, get_format, row_bytes
    w = dequantize(raw_uint8, ggml_type, (rows, cols))   # float32 [rows, cols]
"""

from camelid.quant import formats, kquants  # noqa: F401  (importing registers the formats)
from camelid.quant.base import (
    QuantFormat,
    dequantize,
    get_format,
    quantize_reference,
    registered_formats,
    row_bytes,
)

__all__ = [
    "QuantFormat",
    "dequantize",
    "get_format",
    "quantize_reference",
    "registered_formats",
    "row_bytes",
]
