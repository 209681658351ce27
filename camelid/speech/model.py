"""Whisper in PyTorch, laid out as openai/whisper's `model.py` (same module and parameter names, so its
state_dict loads as is), with a preallocated decoder KV cache.

The encoder turns a log-mel window [B, n_mels, 3000] into audio features [B, 1500, D] once per 30 s segment.
The decoder reads tokens incrementally: a `KVCache` holds, per layer, the self-attention keys/values of the
tokens seen so far (static buffers of `capacity` positions, written in place) and the cross-attention
keys/values of the audio features, projected once on the first `Whisper.logits` call. Rows of a batch share
one position, which is what greedy and beam search need (beams advance in lockstep; finished rows are padded
by the decoder).

Beams run as batch rows. Several rows may share one audio segment: with `A` segments and `B = A * G` token
rows, rows `a*G … a*G+G-1` attend to segment `a`, and the cross-attention keys/values are stored once per
segment (not once per beam). `KVCache.reorder` keeps that sharing as long as beams move within their own
segment's group.

Everything computes in float32; weights stored in half precision are upcast by the loaders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from camelid.errors import BadRequest

# openai/whisper: n_vocab 51864 is English-only; 51865 multilingual (99 languages), 51866 adds Cantonese (v3).
FIRST_MULTILINGUAL_VOCAB = 51865
VOCAB_WITHOUT_LANGUAGES = 51765


@dataclass(frozen=True)
class ModelDimensions:
    n_mels: int  # mel bins of the input spectrogram (80; 128 for large-v3)
    n_audio_ctx: int  # encoder positions: 1500 for a 30 s window (3000 frames, halved by conv2)
    n_audio_state: int  # encoder width
    n_audio_head: int
    n_audio_layer: int
    n_vocab: int
    n_text_ctx: int  # decoder positions (448)
    n_text_state: int  # decoder width (equals n_audio_state in every released model)
    n_text_head: int
    n_text_layer: int


# Up to this many rows (beams, samples), `linear` and `TextDecoder.project` compute x @ W.T as (W @ x.T).T.
FEW_ROWS = 32


def linear(x: Tensor, layer: nn.Linear) -> Tensor:
    """layer(x) for x [..., in_features], in float32 as nn.Linear, but faster for a few rows.

    A decoder step multiplies a handful of rows (the beams) by each weight matrix. For 2 to `FEW_ROWS`
    rows, MKL runs W @ x.T two to four times faster than x @ W.T on the same row-major weight (2 threads,
    weights out of cache; e.g. 5 rows x [1536, 384]: 130 us instead of 270-380 us), so that is what runs;
    the same float32 products, summed in another order. One row or many (prompts, the encoder) go through
    nn.Linear, and so does a layer with hooks (word timestamps catch the cross-attention queries with one).
    """
    rows = x.reshape(-1, x.shape[-1])
    if not 2 <= rows.shape[0] <= FEW_ROWS or layer._forward_hooks or layer._forward_pre_hooks:
        return layer(x)
    out = (layer.weight @ rows.T).T.contiguous()
    if layer.bias is not None:
        out += layer.bias
    return out.view(*x.shape[:-1], out.shape[-1])


def sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> Tensor:
    """The encoder's fixed positional embedding [length, channels]: sines then cosines (openai/whisper)."""
    if channels % 2:
        raise ValueError(f"sinusoidal positions need an even width, got {channels}")
    half = channels // 2
    log_increment = math.log(max_timescale) / (half - 1)
    # on the CPU even while a model is built on the meta device (meta arange pulls in slow decompositions)
    inv_timescales = torch.exp(-log_increment * torch.arange(half, dtype=torch.float32, device="cpu"))
    scaled_time = torch.arange(length, dtype=torch.float32, device="cpu")[:, None] * inv_timescales[None, :]
    return torch.cat([torch.sin(scaled_time), torch.cos(scaled_time)], dim=1)


class MultiHeadAttention(nn.Module):
    """query/key/value/out projections (the key has no bias, as in openai/whisper); scale 1/sqrt(head_dim)."""

    def __init__(self, n_state: int, n_head: int) -> None:
        super().__init__()
        self.n_head = n_head
        self.query = nn.Linear(n_state, n_state)
        self.key = nn.Linear(n_state, n_state, bias=False)
        self.value = nn.Linear(n_state, n_state)
        self.out = nn.Linear(n_state, n_state)

    def split_heads(self, x: Tensor) -> Tensor:
        """[B, T, D] -> [B, H, T, D/H]"""
        batch, length, _ = x.shape
        return x.view(batch, length, self.n_head, -1).transpose(1, 2)

    def merge_heads(self, x: Tensor) -> Tensor:
        """[B, H, T, D/H] -> [B, T, D]"""
        batch, _, length, _ = x.shape
        return x.transpose(1, 2).reshape(batch, length, -1)

    def project_kv(self, source: Tensor) -> tuple[Tensor, Tensor]:
        """Keys and values of `source` [B, S, D], each [B, H, S, D/H]."""
        return self.split_heads(linear(source, self.key)), self.split_heads(linear(source, self.value))

    def forward(self, x: Tensor) -> Tensor:
        """Unmasked self-attention over the whole of x [B, T, D] (the encoder)."""
        q = self.split_heads(linear(x, self.query))
        k, v = self.project_kv(x)
        return linear(self.merge_heads(F.scaled_dot_product_attention(q, k, v)), self.out)

    def cached_self_attention(self, x: Tensor, keys: Tensor, values: Tensor, position: int) -> Tensor:
        """Causal self-attention of new tokens x [B, T, D] at positions position…position+T-1.

        keys/values [B, H, capacity, D/H] are the layer's cache: the new keys/values are written in place,
        then the queries attend to positions 0…position+T-1.
        """
        length = x.shape[1]
        end = position + length
        q = self.split_heads(linear(x, self.query))
        k, v = self.project_kv(x)
        keys[:, :, position:end] = k
        values[:, :, position:end] = v
        mask = None
        if length > 1:  # query i sees keys up to position + i
            query_pos = torch.arange(position, end, device=x.device)
            mask = torch.arange(end, device=x.device)[None, :] <= query_pos[:, None]  # [T, end]
        out = F.scaled_dot_product_attention(q, keys[:, :, :end], values[:, :, :end], attn_mask=mask)
        return linear(self.merge_heads(out), self.out)

    def cross_attention(self, x: Tensor, keys: Tensor, values: Tensor) -> Tensor:
        """x [B, T, D] attends to audio keys/values [A, H, S, D/H] where B = A * G (G rows per segment).

        The G rows of a segment are folded into the query length, so the segment's keys are read once, not
        copied per row: [A*G, H, T, d] -> [A, H, G*T, d].
        """
        batch, length, _ = x.shape
        segments = keys.shape[0]
        group = batch // segments
        q = self.split_heads(linear(x, self.query))  # [B, H, T, d]
        if group > 1:
            head_dim = q.shape[-1]
            q = q.view(segments, group, self.n_head, length, head_dim).transpose(1, 2)
            q = q.reshape(segments, self.n_head, group * length, head_dim)
        out = F.scaled_dot_product_attention(q, keys, values)
        if group > 1:
            out = out.view(segments, self.n_head, group, length, -1).transpose(1, 2)
            out = out.reshape(batch, self.n_head, length, -1)
        return linear(self.merge_heads(out), self.out)


class ResidualAttentionBlock(nn.Module):
    """Pre-norm block: self-attention, optional cross-attention (decoder), GELU MLP of width 4*D."""

    def __init__(self, n_state: int, n_head: int, cross_attention: bool = False) -> None:
        super().__init__()
        self.attn = MultiHeadAttention(n_state, n_head)
        self.attn_ln = nn.LayerNorm(n_state)
        self.cross_attn = MultiHeadAttention(n_state, n_head) if cross_attention else None
        self.cross_attn_ln = nn.LayerNorm(n_state) if cross_attention else None
        self.mlp = nn.Sequential(nn.Linear(n_state, 4 * n_state), nn.GELU(), nn.Linear(4 * n_state, n_state))
        self.mlp_ln = nn.LayerNorm(n_state)

    def forward(self, x: Tensor) -> Tensor:
        """Encoder block: x [B, T, D] -> [B, T, D]."""
        x = x + self.attn(self.attn_ln(x))
        return x + self.mlp(self.mlp_ln(x))

    def decode(self, x: Tensor, cache: KVCache, layer: int) -> Tensor:
        """Decoder block on new tokens x [B, T, D], reading and extending `cache` for this layer."""
        assert self.cross_attn is not None and self.cross_attn_ln is not None and cache.cross_keys is not None
        x = x + self.attn.cached_self_attention(self.attn_ln(x), cache.self_keys[layer],
                                                cache.self_values[layer], cache.position)
        x = x + self.cross_attn.cross_attention(self.cross_attn_ln(x), cache.cross_keys[layer],
                                                cache.cross_values[layer])
        return x + linear(self.mlp[1](linear(self.mlp_ln(x), self.mlp[0])), self.mlp[2])


class AudioEncoder(nn.Module):
    """Two GELU convolutions (the second halves time), fixed sinusoidal positions, blocks, final LayerNorm."""

    def __init__(self, n_mels: int, n_ctx: int, n_state: int, n_head: int, n_layer: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, n_state, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(n_state, n_state, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positional_embedding", sinusoids(n_ctx, n_state))
        self.blocks = nn.ModuleList([ResidualAttentionBlock(n_state, n_head) for _ in range(n_layer)])
        self.ln_post = nn.LayerNorm(n_state)

    def forward(self, mel: Tensor) -> Tensor:
        """mel [B, n_mels, 2*n_ctx] -> audio features [B, n_ctx, D]"""
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x))  # [B, D, n_ctx]
        x = x.transpose(1, 2) + self.positional_embedding
        for block in self.blocks:
            x = block(x)
        return self.ln_post(x)


class TextDecoder(nn.Module):
    """Token + learned position embeddings, cross-attending blocks, LayerNorm; logits tied to the
    embedding."""

    def __init__(self, n_vocab: int, n_ctx: int, n_state: int, n_head: int, n_layer: int) -> None:
        super().__init__()
        # an explicit weight skips the random init (which on the meta device imports torch's decompositions)
        self.token_embedding = nn.Embedding(n_vocab, n_state, _weight=torch.empty(n_vocab, n_state))
        self.positional_embedding = nn.Parameter(torch.empty(n_ctx, n_state))
        self.blocks = nn.ModuleList([ResidualAttentionBlock(n_state, n_head, cross_attention=True)
                                     for _ in range(n_layer)])
        self.ln = nn.LayerNorm(n_state)

    def forward(self, tokens: Tensor, cache: KVCache, positions: list[int] | None = None) -> Tensor:
        """tokens [B, T] at positions cache.position… -> logits [B, T, V]; advances cache.position by T.

        With `positions` (indices into the T new tokens), only those tokens' logits [B, len(positions), V]
        are projected: the prompt of a window needs two of its T rows, not all of them.
        """
        start = cache.position
        x = self.token_embedding(tokens) + self.positional_embedding[start:start + tokens.shape[1]]
        for layer, block in enumerate(self.blocks):
            x = block.decode(x, cache, layer)
        cache.position = start + tokens.shape[1]
        if positions is not None:
            x = x[:, positions]
        return self.project(self.ln(x))

    def project(self, hidden: Tensor) -> Tensor:
        """The tied output projection: hidden [..., D] -> logits [..., V] = hidden @ embedding.T.

        For up to `FEW_ROWS` rows (the beams) it runs as (embedding @ hidden.T).T with the [V, D] embedding
        row-major: MKL reads the 80 MB matrix ~2.5x faster this way (tiny.en, 5 rows, 2 threads: 4.5 ms
        instead of 10.5-13 ms), and a single row runs faster as two (3 ms instead of 8 ms for the
        matrix-vector product), so it is doubled. The [V, N] result is turned into rows by stacking its
        columns (0.1 ms; a transposing copy takes 0.4 ms). Same float32 sums, in another order.
        """
        weight = self.token_embedding.weight
        rows = hidden.reshape(-1, hidden.shape[-1])
        count = rows.shape[0]
        if count > FEW_ROWS:
            logits = rows @ weight.T
        else:
            if count == 1:
                rows = rows.expand(2, -1)
            logits = torch.stack((weight @ rows.T).unbind(1)[:count])  # [N, V]
        return logits.view(*hidden.shape[:-1], weight.shape[0])

    def project_audio(self, audio_features: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Cross-attention keys and values of every layer, each [A, H, S, D/H]."""
        keys, values = [], []
        for block in self.blocks:
            k, v = block.cross_attn.project_kv(audio_features)
            keys.append(k)
            values.append(v)
        return keys, values


@dataclass
class KVCache:
    """Decoder state for one batch of rows: self-attention keys/values per layer [B, H, capacity, D/H]
    (written in place), cross-attention keys/values per layer [A, H, n_audio_ctx, D/H] (set on the first
    `Whisper.logits` call, one per audio segment), the next position, and how many rows share a segment."""

    self_keys: list[Tensor]
    self_values: list[Tensor]
    cross_keys: list[Tensor] | None = None
    cross_values: list[Tensor] | None = None
    position: int = 0
    rows_per_segment: int = 1

    @property
    def batch(self) -> int:
        return self.self_keys[0].shape[0]

    @property
    def capacity(self) -> int:
        return self.self_keys[0].shape[2]

    def reset(self) -> None:
        """Forget the tokens and the audio: the cache is ready for a new segment (buffers are reused)."""
        self.position = 0
        self.cross_keys = self.cross_values = None
        self.rows_per_segment = 1

    def rewind(self, position: int) -> None:
        """Keep only the first `position` tokens (e.g. to re-decode from a shared prompt)."""
        if not 0 <= position <= self.position:
            raise ValueError(f"cannot rewind the cache to {position}: it holds {self.position} tokens")
        self.position = position

    @torch.no_grad()
    def reorder(self, indices: Tensor | list[int]) -> None:
        """Row i becomes old row indices[i] (beam search). The number of rows may change.

        Cross-attention keys stay shared per segment when every row keeps its segment; otherwise they are
        gathered per row (one copy each) so that the rows stay correct.
        """
        rows = self.batch
        index = torch.as_tensor(indices, dtype=torch.long, device=self.self_keys[0].device)
        if index.ndim != 1 or (index.numel() and (int(index.min()) < 0 or int(index.max()) >= rows)):
            raise ValueError(f"reorder indices must be a list of row numbers below {rows}")
        end = self.position
        if index.numel() == rows:
            # only the rows that take another row's history are written (beams mostly keep their own)
            moved = (index != torch.arange(rows, device=index.device)).nonzero().flatten()
            if moved.numel():
                sources = index[moved]
                for buffers in (self.self_keys, self.self_values):
                    for buffer in buffers:
                        buffer[moved, :, :end] = buffer[sources, :, :end]
        else:
            self.self_keys = [buffer[index] for buffer in self.self_keys]
            self.self_values = [buffer[index] for buffer in self.self_values]
        if self.cross_keys is None or self.cross_values is None:
            return
        group = self.rows_per_segment
        old_segment = torch.div(index, group, rounding_mode="floor")
        rows_now = torch.arange(index.numel(), device=index.device)
        new_segment = torch.div(rows_now, group, rounding_mode="floor")
        if index.numel() == rows and torch.equal(old_segment, new_segment):
            return  # every row stayed with its segment: the shared keys/values still fit
        self.cross_keys = [keys[old_segment] for keys in self.cross_keys]
        self.cross_values = [values[old_segment] for values in self.cross_values]
        self.rows_per_segment = 1


class Whisper(nn.Module):
    def __init__(self, dims: ModelDimensions) -> None:
        super().__init__()
        self.dims = dims
        self.encoder = AudioEncoder(dims.n_mels, dims.n_audio_ctx, dims.n_audio_state, dims.n_audio_head,
                                    dims.n_audio_layer)
        self.decoder = TextDecoder(dims.n_vocab, dims.n_text_ctx, dims.n_text_state, dims.n_text_head,
                                   dims.n_text_layer)
        # Cross-attention heads that follow the alignment (word timestamps); openai's default is the last half
        # of the decoder layers. A plain attribute, not a buffer: not a weight, and never on the meta device.
        heads = torch.zeros(dims.n_text_layer, dims.n_text_head, dtype=torch.bool, device="cpu")
        heads[dims.n_text_layer // 2:] = True
        self.alignment_heads = heads

    def set_alignment_heads(self, pairs: list[tuple[int, int]] | list[list[int]]) -> None:
        """Use the given (layer, head) pairs (config.json `alignment_heads`) as the alignment heads."""
        heads = torch.zeros(self.dims.n_text_layer, self.dims.n_text_head, dtype=torch.bool, device="cpu")
        for layer, head in pairs:
            heads[layer, head] = True
        self.alignment_heads = heads

    @torch.no_grad()
    def prepare_for_decoding(self) -> Whisper:
        """Store the token embedding row-major and contiguous, the layout `TextDecoder.project` reads fastest;
        call once after the weights are in. The state_dict keeps its keys, shapes and values."""
        weight = self.decoder.token_embedding.weight
        if weight.device.type != "meta" and not weight.is_contiguous():
            self.decoder.token_embedding.weight = nn.Parameter(weight.contiguous(),
                                                               requires_grad=weight.requires_grad)
        return self

    @property
    def is_multilingual(self) -> bool:
        return self.dims.n_vocab >= FIRST_MULTILINGUAL_VOCAB

    @property
    def num_languages(self) -> int:
        return self.dims.n_vocab - VOCAB_WITHOUT_LANGUAGES - int(self.is_multilingual)

    @property
    def device(self) -> torch.device:
        return self.decoder.token_embedding.weight.device

    @torch.no_grad()
    def embed_audio(self, mel: Tensor) -> Tensor:
        """Log-mel windows [B, n_mels, 2*n_audio_ctx] (3000 frames) -> audio features [B, n_audio_ctx, D]."""
        expected = (self.dims.n_mels, 2 * self.dims.n_audio_ctx)
        if mel.ndim != 3 or tuple(mel.shape[1:]) != expected:
            raise BadRequest(f"the Whisper encoder takes log-mel windows of shape [batch, {expected[0]}, "
                             f"{expected[1]}], got {list(mel.shape)}")
        return self.encoder(mel.to(device=self.device, dtype=torch.float32))

    @torch.no_grad()
    def new_cache(self, batch: int, capacity: int | None = None) -> KVCache:
        """An empty cache for `batch` token rows holding up to `capacity` positions (default n_text_ctx)."""
        capacity = self.dims.n_text_ctx if capacity is None else capacity
        if not 0 < capacity <= self.dims.n_text_ctx:
            raise ValueError(f"cache capacity must be 1…{self.dims.n_text_ctx}, got {capacity}")
        head_dim = self.dims.n_text_state // self.dims.n_text_head
        shape = (batch, self.dims.n_text_head, capacity, head_dim)
        layers = range(self.dims.n_text_layer)
        return KVCache(self_keys=[torch.zeros(shape, device=self.device) for _ in layers],
                       self_values=[torch.zeros(shape, device=self.device) for _ in layers])

    @torch.no_grad()
    def logits(self, tokens: Tensor, audio_features: Tensor | None, cache: KVCache | None = None,
               positions: list[int] | None = None) -> Tensor:
        """Logits [B, T, V] of the next token after each of `tokens` [B, T] (only after `tokens[:, positions]`
        when given: [B, len(positions), V]).

        `tokens` are the tokens after those already in `cache` (all of them on the first call); the cache
        advances by T. The first call on a cache projects `audio_features` [A, S, D] (B = A * G rows) into its
        cross-attention keys/values; later calls ignore `audio_features` (None is fine). Without a cache,
        `tokens` is a whole sequence decoded from position 0.
        """
        if tokens.ndim != 2:
            raise BadRequest(f"tokens must be [batch, length], got shape {list(tokens.shape)}")
        if cache is None:
            capacity = max(1, min(tokens.shape[1], self.dims.n_text_ctx))
            cache = self.new_cache(tokens.shape[0], capacity=capacity)
        if tokens.shape[0] != cache.batch:
            raise BadRequest(f"{tokens.shape[0]} token rows for a cache of {cache.batch} rows")
        if cache.position + tokens.shape[1] > cache.capacity:
            raise BadRequest(f"the decoder holds at most {cache.capacity} tokens; {cache.position} are in "
                             f"the cache and {tokens.shape[1]} more were given")
        if cache.cross_keys is None:
            self._attach_audio(cache, audio_features)
        return self.decoder(tokens.to(self.device), cache, positions)

    def _attach_audio(self, cache: KVCache, audio_features: Tensor | None) -> None:
        if audio_features is None:
            raise BadRequest("the first decoder call on a cache needs the audio features")
        segments = audio_features.shape[0]
        expected = (self.dims.n_audio_ctx, self.dims.n_text_state)
        if audio_features.ndim != 3 or tuple(audio_features.shape[1:]) != expected:
            raise BadRequest(f"audio features must be [segments, {expected[0]}, {expected[1]}], "
                             f"got {list(audio_features.shape)}")
        if segments == 0 or cache.batch % segments:
            raise BadRequest(f"{cache.batch} token rows cannot be split evenly over {segments} audio "
                             f"segments")
        features = audio_features.to(device=self.device, dtype=torch.float32)
        cache.cross_keys, cache.cross_values = self.decoder.project_audio(features)
        cache.rows_per_segment = cache.batch // segments

    def forward(self, mel: Tensor, tokens: Tensor) -> Tensor:
        """Teacher-forced logits [B, T, V] of `tokens` [B, T] for log-mel windows [B, n_mels, 3000]."""
        return self.logits(tokens, self.embed_audio(mel))
