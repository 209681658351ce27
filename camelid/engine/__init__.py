"""Generation engine: KV cache slots, sampling, the prefill/decode loop."""
