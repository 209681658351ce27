"""A static, preallocated key/value cache with one slot per concurrent sequence.

Each layer owns two tensors, keys [n_slots, n_kv_heads, n_ctx, head_dim_k] and values
[n_slots, n_kv_heads, n_ctx, head_dim_v], allocated once. A forward pass writes the new keys/values of each
sequence at its token positions in its slot and reads back that slot's prefix. Storage defaults to float16
like llama.cpp's KV cache; what `update` returns is always float32 for compute.
"""

from __future__ import annotations

import torch

PADDING_POSITION = -1  # a token at this position is padding: nothing is written for it


class KVCache:
    """Preallocated per-layer K/V storage indexed by (slot, position)."""

    def __init__(self, n_layers: int, n_slots: int, n_ctx: int, n_kv_heads: int, head_dim_k: int,
                 head_dim_v: int, dtype: torch.dtype = torch.float16,
                 device: torch.device | str = "cpu") -> None:
        if min(n_layers, n_slots, n_ctx, n_kv_heads, head_dim_k, head_dim_v) <= 0:
            raise ValueError("KVCache sizes must all be positive")
        self.n_layers, self.n_slots, self.n_ctx = n_layers, n_slots, n_ctx
        self.n_kv_heads, self.head_dim_k, self.head_dim_v = n_kv_heads, head_dim_k, head_dim_v
        self.dtype = dtype
        self.keys = [torch.zeros(n_slots, n_kv_heads, n_ctx, head_dim_k, dtype=dtype, device=device)
                     for _ in range(n_layers)]
        self.values = [torch.zeros(n_slots, n_kv_heads, n_ctx, head_dim_v, dtype=dtype, device=device)
                       for _ in range(n_layers)]

    def write(self, layer: int, slots: torch.Tensor, positions: torch.Tensor, k: torch.Tensor,
              v: torch.Tensor) -> None:
        """Store new keys/values: slots [B] (distinct), positions [B, T] (PADDING_POSITION marks padding),
        k [B, n_kv_heads, T, head_dim_k], v [B, n_kv_heads, T, head_dim_v]."""
        keys, values = self.keys[layer], self.values[layer]
        n_keys = int(positions.max()) + 1
        if n_keys > self.n_ctx:
            raise ValueError(f"position {n_keys - 1} is past the cache context of {self.n_ctx} tokens")
        real = positions >= 0  # [B, T]
        slot_of_token = slots[:, None].expand_as(positions)[real]  # [N]
        position_of_token = positions[real]  # [N]
        # Advanced indices around a slice: the indexed view is [N, n_kv_heads, head_dim].
        keys[slot_of_token, :, position_of_token] = k.transpose(1, 2)[real].to(self.dtype)
        values[slot_of_token, :, position_of_token] = v.transpose(1, 2)[real].to(self.dtype)

    def read(self, layer: int, slots: torch.Tensor, n_keys: int) -> tuple[torch.Tensor, torch.Tensor]:
        """float32 keys [B, n_kv_heads, n_keys, head_dim_k] and values [B, n_kv_heads, n_keys, head_dim_v] of the
        slots' positions 0..n_keys-1; entries past a sequence's own positions hold whatever the slot held before:
        the caller masks them."""
        return (self.keys[layer][slots, :, :n_keys].to(torch.float32),
                self.values[layer][slots, :, :n_keys].to(torch.float32))

    def update(self, layer: int, slots: torch.Tensor, positions: torch.Tensor, k: torch.Tensor,
               v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`write`, then `read` of positions 0..max(positions)."""
        self.write(layer, slots, positions, k, v)
        return self.read(layer, slots, int(positions.max()) + 1)

    def clear(self, slot: int) -> None:
        """Forget everything a slot holds (zeroes it: stale entries are masked anyway, this is hygiene)."""
        for layer in range(self.n_layers):
            self.keys[layer][slot].zero_()
            self.values[layer][slot].zero_()

    @property
    def n_bytes(self) -> int:
        """Memory held by the cache."""
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))

    def __repr__(self) -> str:
        return (f"KVCache(layers={self.n_layers}, slots={self.n_slots}, n_ctx={self.n_ctx}, "
                f"kv_heads={self.n_kv_heads}, head_dim={self.head_dim_k}/{self.head_dim_v}, "
                f"dtype={self.dtype})")
