"""Decoding of 30 s log-mel windows into tokens, following openai/whisper's `decoding.py`.

One `decode` call runs a `DecodingTask`: the encoder once per window, an optional language detection, then
the decoder step by step through the model's KV cache. Each step, the logit filters (`SuppressBlank`,
`SuppressTokens`, `ApplyTimestampRules`) mask the next-token logits in place, and a token decoder strategy
(`GreedyDecoder`: argmax or temperature sampling; `BeamSearchDecoder`: beam search with patience) picks the
next tokens. Several candidates per window (beams, or best-of-N samples) run as rows of one batch: the G rows
of a window share its cross-attention keys/values in the cache (its prompt runs once, then is copied to the G
rows), and beam search reorders the cache rows within their window's group. `MaximumLikelihoodRanker` picks
the returned candidate.

The rules and their order are openai/whisper's, so results match token for token (same model, float32).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from camelid.errors import BadRequest
from camelid.speech.audio import CHUNK_LENGTH
from camelid.speech.model import KVCache, Whisper
from camelid.speech.tokenizer import TASKS, WhisperTokenizer

__all__ = [
    "ApplyTimestampRules",
    "BeamSearchDecoder",
    "DecodingOptions",
    "DecodingResult",
    "DecodingTask",
    "GreedyDecoder",
    "LogitFilter",
    "MaximumLikelihoodRanker",
    "SuppressBlank",
    "SuppressTokens",
    "TokenDecoder",
    "compression_ratio",
    "decode",
    "detect_language",
]


def compression_ratio(text: str) -> float:
    """UTF-8 length over zlib-compressed length (openai/whisper's repetition measure; above ~2.4 the text
    loops)."""
    text_bytes = text.encode("utf-8")
    return len(text_bytes) / len(zlib.compress(text_bytes))


@dataclass(frozen=True)
class DecodingOptions:
    # whether to perform X->X "transcribe" or X->English "translate"
    task: str = "transcribe"

    # language that the audio is in (a code or a name); detected if None (multilingual models only)
    language: str | None = None

    # sampling-related options
    temperature: float = 0.0
    sample_len: int | None = None  # maximum number of tokens to sample (default: n_text_ctx // 2)
    best_of: int | None = None  # number of independent sample trajectories, if t > 0
    beam_size: int | None = None  # number of beams in beam search, if t == 0
    patience: float | None = None  # patience in beam search (arxiv:2204.05424); None means 1.0
    seed: int = 0  # the sampler's seed above temperature 0: a window decodes the same way run after run

    # "alpha" in Google NMT, or None for length norm, when ranking generations
    # to select which to return among the beams or best-of-N samples
    length_penalty: float | None = None

    # text or tokens to feed as the prompt or the prefix
    prompt: str | list[int] | None = None  # previous text, after <|startofprev|>
    prefix: str | list[int] | None = None  # forced start of the current text, after the sot sequence

    # list of token ids (or comma-separated token ids) to suppress;
    # "-1" suppresses the symbols of `tokenizer.non_speech_tokens`
    suppress_tokens: str | Iterable[int] | None = "-1"
    suppress_blank: bool = True  # suppress a blank (" " or <|endoftext|>) as the first sampled token

    # timestamp sampling options
    without_timestamps: bool = False  # use <|notimestamps|> to sample text tokens only
    max_initial_timestamp: float | None = 1.0  # latest timestamp (seconds) allowed as the first token


@dataclass(frozen=True)
class DecodingResult:
    language: str  # the language code the window was decoded as (given or detected)
    language_probs: dict[str, float] | None = None  # the detection's distribution, when it ran
    tokens: list[int] = field(default_factory=list)  # sampled tokens (timestamps included), without eot
    text: str = ""  # the text of `tokens`, stripped
    avg_logprob: float = np.nan  # sum of the sampled tokens' log-probabilities / (len(tokens) + 1)
    no_speech_prob: float = np.nan  # probability of <|nospeech|> right after <|startoftranscript|>
    temperature: float = np.nan
    compression_ratio: float = np.nan  # of `text`, see `compression_ratio`


# --- language detection -------------------------------------------------------------------------------------

def _audio_features(model: Whisper, mel: Tensor) -> Tensor:
    """Audio features [B, n_audio_ctx, D] of log-mel windows [B, n_mels, frames], or the features as given."""
    if tuple(mel.shape[-2:]) == (model.dims.n_audio_ctx, model.dims.n_audio_state):
        return mel.to(device=model.device, dtype=torch.float32)
    return model.embed_audio(mel)


@torch.no_grad()
def detect_language(model: Whisper, tokenizer: WhisperTokenizer, mel: Tensor
                    ) -> tuple[Tensor, dict[str, float] | list[dict[str, float]]]:
    """The most probable language token and the distribution over language codes, from the decoder's
    logits after <|startoftranscript|> with every non-language token masked.

    `mel` is one window [n_mels, 3000], a batch [B, n_mels, 3000] or audio features [B, n_audio_ctx, D];
    a single window gives a 0-d token tensor and one dict, a batch a [B] tensor and a list of dicts.
    """
    if not tokenizer.multilingual or tokenizer.num_languages == 0:
        raise BadRequest("this Whisper model is English-only: it has no language tokens to detect a "
                         "language with")
    single = mel.ndim == 2
    if single:
        mel = mel.unsqueeze(0)
    audio_features = _audio_features(model, mel)
    n_audio = audio_features.shape[0]
    sot = torch.full((n_audio, 1), tokenizer.sot, dtype=torch.long)
    logits = model.logits(sot, audio_features)[:, 0]  # [B, V]
    mask = torch.ones(logits.shape[-1], dtype=torch.bool, device=logits.device)
    mask[list(tokenizer.all_language_tokens)] = False
    logits[:, mask] = -np.inf
    language_tokens = logits.argmax(dim=-1)
    probs = logits.softmax(dim=-1).cpu()
    language_probs = [{code: probs[row, token].item()
                       for token, code in zip(tokenizer.all_language_tokens, tokenizer.all_language_codes,
                                              strict=True)}
                      for row in range(n_audio)]
    if single:
        return language_tokens[0], language_probs[0]
    return language_tokens, language_probs


# --- logit filters ------------------------------------------------------------------------------------------

class LogitFilter:
    def apply(self, logits: Tensor, tokens: Tensor) -> None:
        """Mask `logits` [B, V] in place, given every token so far `tokens` [B, T] (prompt included)."""
        raise NotImplementedError


class SuppressBlank(LogitFilter):
    """No blank (" ") and no <|endoftext|> as the first sampled token."""

    def __init__(self, tokenizer: WhisperTokenizer, sample_begin: int) -> None:
        self.blank_tokens = [*tokenizer.encode(" "), tokenizer.eot]
        self.sample_begin = sample_begin

    def apply(self, logits: Tensor, tokens: Tensor) -> None:
        if tokens.shape[1] == self.sample_begin:
            logits[:, self.blank_tokens] = -np.inf


class SuppressTokens(LogitFilter):
    """These tokens never."""

    def __init__(self, suppress_tokens: Sequence[int]) -> None:
        self.suppress_tokens = list(suppress_tokens)

    def apply(self, logits: Tensor, tokens: Tensor) -> None:
        logits[:, self.suppress_tokens] = -np.inf


class ApplyTimestampRules(LogitFilter):
    """openai/whisper's timestamp grammar, in its order:

    1. <|notimestamps|> never (a timestamp-less decode puts it in the prompt instead);
    2. timestamps come in pairs (end, start), except a single one right before <|endoftext|>: after a
       timestamp that follows text, only a timestamp or eot; after two timestamps, only text;
    3. timestamps never decrease, and a segment that just opened (text not yet sampled) cannot close at
       its own start: a timestamp after text is >= the last one, any other > the last one;
    4. the first sampled token is a timestamp no later than `max_initial_timestamp_index`;
    5. when the timestamps together are more probable than the likeliest text token, only timestamps.
    """

    def __init__(self, tokenizer: WhisperTokenizer, sample_begin: int,
                 max_initial_timestamp_index: int | None) -> None:
        self.timestamp_begin = tokenizer.timestamp_begin
        self.eot = tokenizer.eot
        self.no_timestamps = tokenizer.no_timestamps
        self.sample_begin = sample_begin
        self.max_initial_timestamp_index = max_initial_timestamp_index

    def apply(self, logits: Tensor, tokens: Tensor) -> None:
        begin = self.timestamp_begin
        logits[:, self.no_timestamps] = -np.inf

        for row, sampled in enumerate(tokens[:, self.sample_begin:].tolist()):
            last_was_timestamp = len(sampled) >= 1 and sampled[-1] >= begin
            penultimate_was_timestamp = len(sampled) < 2 or sampled[-2] >= begin
            if last_was_timestamp:
                if penultimate_was_timestamp:  # a pair just closed (or the first token): text next
                    logits[row, begin:] = -np.inf
                else:  # a segment's end: another timestamp or eot, no text
                    logits[row, :self.eot] = -np.inf
            timestamps = [token for token in sampled if token >= begin]
            if timestamps:
                # no going back in time; a segment that starts here must end later (no empty segments)
                if last_was_timestamp and not penultimate_was_timestamp:
                    timestamp_last = timestamps[-1]
                else:
                    timestamp_last = timestamps[-1] + 1
                logits[row, begin:timestamp_last] = -np.inf

        if tokens.shape[1] == self.sample_begin:
            logits[:, :begin] = -np.inf  # the first sampled token is a timestamp
            if self.max_initial_timestamp_index is not None:
                logits[:, begin + self.max_initial_timestamp_index + 1:] = -np.inf

        # a timestamp when all timestamps together outweigh the likeliest text token
        logprobs = F.log_softmax(logits.float(), dim=-1)
        timestamp_logprob = logprobs[:, begin:].logsumexp(dim=-1)  # [B]
        max_text_token_logprob = logprobs[:, :begin].max(dim=-1).values  # [B]
        logits[timestamp_logprob > max_text_token_logprob, :begin] = -np.inf


# --- token decoders -----------------------------------------------------------------------------------------

class TokenDecoder:
    def reset(self) -> None:
        """Forget the state of a previous decode."""

    def update(self, tokens: Tensor, logits: Tensor, sum_logprobs: Tensor) -> tuple[Tensor, bool]:
        """Pick the next tokens from the filtered `logits` [B, V]: `tokens` [B, T] -> [B, T+1] (beam search
        may also reorder the rows) and update `sum_logprobs` [B] in place; also whether decoding is done."""
        raise NotImplementedError

    def finalize(self, tokens: Tensor, sum_logprobs: Tensor
                 ) -> tuple[Sequence[Sequence[Tensor]], list[list[float]]]:
        """The candidate sequences per window (each ending in eot) and their summed log-probabilities, from
        `tokens` [n_audio, n_group, T] and `sum_logprobs` [n_audio, n_group]."""
        raise NotImplementedError


class GreedyDecoder(TokenDecoder):
    """Argmax at temperature 0, else a sample from softmax(logits / temperature), drawn from a generator seeded
    for the window (openai-whisper draws from torch's global RNG, so its fallbacks differ run to run)."""

    def __init__(self, temperature: float, eot: int, seed: int = 0) -> None:
        self.temperature = temperature
        self.eot = eot
        self.generator = torch.Generator().manual_seed(seed)

    def update(self, tokens: Tensor, logits: Tensor, sum_logprobs: Tensor) -> tuple[Tensor, bool]:
        if self.temperature == 0:
            next_tokens = logits.argmax(dim=-1)
        else:
            probs = F.softmax(logits.float() / self.temperature, dim=-1)
            next_tokens = torch.multinomial(probs, 1, generator=self.generator).squeeze(-1)
        logprobs = F.log_softmax(logits.float(), dim=-1)
        current_logprobs = logprobs[torch.arange(logprobs.shape[0]), next_tokens]
        finished = tokens[:, -1] == self.eot
        sum_logprobs += current_logprobs * ~finished
        next_tokens[finished] = self.eot  # finished rows only pad with eot
        tokens = torch.cat([tokens, next_tokens[:, None]], dim=-1)
        return tokens, bool((tokens[:, -1] == self.eot).all())

    def finalize(self, tokens: Tensor, sum_logprobs: Tensor
                 ) -> tuple[Sequence[Sequence[Tensor]], list[list[float]]]:
        return F.pad(tokens, (0, 1), value=self.eot), sum_logprobs.tolist()  # every row ends in eot


class BeamSearchDecoder(TokenDecoder):
    """Beam search over `beam_size` rows per window. Each beam proposes its beam_size + 1 likeliest next
    tokens; of all proposals (ranked by summed log-probability), those ending in eot become finished
    candidates and the best beam_size others the next beams. A window is done once it holds
    round(beam_size * patience) finished candidates. `reorder_cache(indices)` moves the KV cache rows
    along with the beams (row i takes old row indices[i])."""

    def __init__(self, beam_size: int, eot: int, reorder_cache: Callable[[list[int]], None],
                 patience: float | None = None) -> None:
        self.beam_size = beam_size
        self.eot = eot
        self.reorder_cache = reorder_cache
        self.patience = patience or 1.0
        self.max_candidates: int = round(beam_size * self.patience)
        self.finished_sequences: list[dict[tuple[int, ...], float]] | None = None
        if self.max_candidates <= 0:
            raise BadRequest(f"invalid beam size ({beam_size}) or patience ({patience})")

    def reset(self) -> None:
        self.finished_sequences = None

    def update(self, tokens: Tensor, logits: Tensor, sum_logprobs: Tensor) -> tuple[Tensor, bool]:
        if tokens.shape[0] % self.beam_size != 0:
            raise ValueError(f"{tokens.shape[0]} rows are not a whole number of {self.beam_size} beams")
        n_audio = tokens.shape[0] // self.beam_size
        if self.finished_sequences is None:  # the first step
            self.finished_sequences = [{} for _ in range(n_audio)]

        logprobs = F.log_softmax(logits.float(), dim=-1)
        top_logprobs, top_tokens = logprobs.topk(self.beam_size + 1)  # [B, beam_size + 1]
        top_logprobs, top_tokens = top_logprobs.tolist(), top_tokens.tolist()
        prefixes = tokens.tolist()
        sums = sum_logprobs.tolist()
        next_tokens: list[list[int]] = []
        source_indices: list[int] = []
        for audio in range(n_audio):
            scores: dict[tuple[int, ...], float] = {}
            sources: dict[tuple[int, ...], int] = {}
            for beam in range(self.beam_size):  # every beam's candidates, scored by summed log-probability
                row = audio * self.beam_size + beam
                for logprob, token in zip(top_logprobs[row], top_tokens[row], strict=True):
                    sequence = (*prefixes[row], token)
                    # summed in float32 as a tensor would be, so that ties break as in openai/whisper
                    scores[sequence] = float(np.float32(sums[row]) + np.float32(logprob))
                    sources[sequence] = row
            saved = 0
            finished: dict[tuple[int, ...], float] = {}
            for sequence in sorted(scores, key=scores.get, reverse=True):  # best beam_size go on
                if sequence[-1] == self.eot:
                    finished[sequence] = scores[sequence]
                else:
                    sum_logprobs[len(next_tokens)] = scores[sequence]
                    next_tokens.append(list(sequence))
                    source_indices.append(sources[sequence])
                    saved += 1
                    if saved == self.beam_size:
                        break
            previously_finished = self.finished_sequences[audio]
            for sequence in sorted(finished, key=finished.get, reverse=True):
                if len(previously_finished) >= self.max_candidates:
                    break  # the candidate list is full
                previously_finished[sequence] = finished[sequence]

        if source_indices != list(range(len(source_indices))):
            self.reorder_cache(source_indices)
        tokens = torch.tensor(next_tokens, dtype=tokens.dtype, device=tokens.device)
        completed = all(len(sequences) >= self.max_candidates for sequences in self.finished_sequences)
        return tokens, completed

    def finalize(self, tokens: Tensor, sum_logprobs: Tensor
                 ) -> tuple[Sequence[Sequence[Tensor]], list[list[float]]]:
        assert self.finished_sequences is not None, "finalize before any update"
        sum_logprobs = sum_logprobs.cpu()
        for audio, sequences in enumerate(self.finished_sequences):
            if len(sequences) < self.beam_size:  # too few finished: add the best unfinished beams
                for beam in np.argsort(sum_logprobs[audio].numpy())[::-1].tolist():
                    sequence = (*tokens[audio, beam].tolist(), self.eot)
                    sequences[sequence] = sum_logprobs[audio][beam].item()
                    if len(sequences) >= self.beam_size:
                        break
        candidates = [[torch.tensor(sequence) for sequence in sequences]
                      for sequences in self.finished_sequences]
        scores = [list(sequences.values()) for sequences in self.finished_sequences]
        return candidates, scores


class MaximumLikelihoodRanker:
    """The candidate with the best summed log-probability over a length penalty: its length, or Google
    NMT's ((5 + length) / 6) ** alpha when `length_penalty` (alpha) is given."""

    def __init__(self, length_penalty: float | None) -> None:
        self.length_penalty = length_penalty

    def rank(self, tokens: Sequence[Sequence[Tensor]], sum_logprobs: list[list[float]]) -> list[int]:
        """The index of the chosen candidate of each window."""
        def penalty(length: int) -> float:
            return length if self.length_penalty is None else ((5 + length) / 6) ** self.length_penalty

        return [int(np.argmax([logprob / penalty(len(sequence))
                               for sequence, logprob in zip(candidates, logprobs, strict=True)]))
                for candidates, logprobs in zip(tokens, sum_logprobs, strict=True)]


# --- the decoding task --------------------------------------------------------------------------------------

def _check_options(options: DecodingOptions) -> None:
    if options.task not in TASKS:
        raise BadRequest(f"unknown task '{options.task}': use transcribe or translate")
    if options.beam_size is not None and options.best_of is not None:
        raise BadRequest("beam_size and best_of cannot be given together")
    if options.temperature == 0 and options.best_of is not None:
        raise BadRequest("best_of needs sampling (a temperature above 0)")
    if options.temperature < 0:
        raise BadRequest(f"temperature must be 0 or more, got {options.temperature}")
    if options.patience is not None and options.beam_size is None:
        raise BadRequest("patience requires beam_size to be given")
    if options.length_penalty is not None and not 0 <= options.length_penalty <= 1:
        raise BadRequest("length_penalty (alpha) must be between 0 and 1")
    for name in ("beam_size", "best_of", "sample_len"):
        value = getattr(options, name)
        if value is not None and value < 1:
            raise BadRequest(f"{name} must be at least 1, got {value}")


class DecodingTask:
    """One decoding run: initial tokens, logit filters and a decoder strategy built from the options."""

    def __init__(self, model: Whisper, tokenizer: WhisperTokenizer, options: DecodingOptions) -> None:
        _check_options(options)
        self.model = model
        self.tokenizer = tokenizer
        self.options = options
        self.language = options.language or "en"  # English-only models ignore it, as openai/whisper does
        if tokenizer.multilingual:
            self.language = tokenizer.language_code(self.language)
        self.n_group: int = options.beam_size or options.best_of or 1
        self.n_ctx: int = model.dims.n_text_ctx
        self.sample_len: int = options.sample_len or model.dims.n_text_ctx // 2

        sot_sequence = tokenizer.sot_sequence(self.language, options.task)
        if options.without_timestamps:
            sot_sequence = (*sot_sequence, tokenizer.no_timestamps)
        self.sot_sequence: tuple[int, ...] = sot_sequence
        self.initial_tokens: tuple[int, ...] = self._initial_tokens()
        self.sample_begin: int = len(self.initial_tokens)
        self.sot_index: int = self.initial_tokens.index(tokenizer.sot)
        if self.sample_begin >= self.n_ctx:
            raise BadRequest(f"the prompt and prefix take {self.sample_begin} tokens; the decoder holds "
                             f"{self.n_ctx}")
        self.cache: KVCache | None = None

        self.ranker = MaximumLikelihoodRanker(options.length_penalty)
        self.decoder: TokenDecoder
        if options.beam_size is not None:
            self.decoder = BeamSearchDecoder(options.beam_size, tokenizer.eot, self._reorder_cache,
                                             options.patience)
        else:
            self.decoder = GreedyDecoder(options.temperature, tokenizer.eot, options.seed)

        self.logit_filters: list[LogitFilter] = []
        if options.suppress_blank:
            self.logit_filters.append(SuppressBlank(tokenizer, self.sample_begin))
        if options.suppress_tokens:
            self.logit_filters.append(SuppressTokens(self._suppress_tokens()))
        if not options.without_timestamps:
            precision = CHUNK_LENGTH / model.dims.n_audio_ctx  # seconds per timestamp step: 0.02
            max_initial_timestamp_index = None
            if options.max_initial_timestamp:
                max_initial_timestamp_index = round(options.max_initial_timestamp / precision)
            self.logit_filters.append(ApplyTimestampRules(tokenizer, self.sample_begin,
                                                          max_initial_timestamp_index))

    def _text_tokens(self, text_or_tokens: str | list[int]) -> list[int]:
        if isinstance(text_or_tokens, str):
            return self.tokenizer.encode(" " + text_or_tokens.strip())
        return list(text_or_tokens)

    def _initial_tokens(self) -> tuple[int, ...]:
        """[<|startofprev|> prompt…] sot sequence [prefix…]"""
        tokens = list(self.sot_sequence)
        if prefix := self.options.prefix:
            # openai/whisper's slice, quirks included: with the default sample_len the limit is 0, and
            # [-0:] keeps the whole prefix
            max_prefix_len = self.n_ctx // 2 - self.sample_len
            tokens += self._text_tokens(prefix)[-max_prefix_len:]
        if prompt := self.options.prompt:
            prompt_tokens = self._text_tokens(prompt)[-(self.n_ctx // 2 - 1):]  # the most recent text
            tokens = [self.tokenizer.sot_prev, *prompt_tokens, *tokens]
        return tuple(tokens)

    def _suppress_tokens(self) -> tuple[int, ...]:
        suppress = self.options.suppress_tokens
        if isinstance(suppress, str):
            try:
                suppress = [int(token) for token in suppress.split(",") if token.strip()]
            except ValueError:
                raise BadRequest(f"suppress_tokens must be comma-separated token ids, got "
                                 f"'{self.options.suppress_tokens}'") from None
        tokens = list(suppress or [])
        if -1 in tokens:
            tokens = [token for token in tokens if token >= 0]
            tokens.extend(self.tokenizer.non_speech_tokens)
        tokenizer = self.tokenizer
        tokens += [tokenizer.transcribe, tokenizer.translate, tokenizer.sot, tokenizer.sot_prev,
                   tokenizer.sot_lm, tokenizer.no_speech]  # no-speech is read separately
        vocabulary = self.model.dims.n_vocab
        if any(not 0 <= token < vocabulary for token in tokens):
            raise BadRequest(f"suppress_tokens must be token ids below {vocabulary}")
        return tuple(sorted(set(tokens)))

    def _reorder_cache(self, source_indices: list[int]) -> None:
        assert self.cache is not None
        self.cache.reorder(source_indices)

    def _detect_language(self, audio_features: Tensor, tokens: Tensor
                         ) -> tuple[list[str], list[dict[str, float]] | None]:
        """The language of each window: the given one, or detected (written into the sot sequence)."""
        n_audio = audio_features.shape[0]
        if self.options.language is not None or not self.tokenizer.multilingual:
            return [self.language] * n_audio, None
        language_tokens, probs = detect_language(self.model, self.tokenizer, audio_features)
        assert isinstance(probs, list)
        tokens[:, self.sot_index + 1] = language_tokens  # the language token follows sot
        return [max(row, key=row.__getitem__) for row in probs], probs

    def _prefill(self, audio_features: Tensor, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """Run the initial tokens [B, T] through the decoder and leave `self.cache` holding them: the logits
        [B, V] after <|startoftranscript|> and after the last initial token.

        The G rows of a window start alike, so one row per window goes through the decoder (a prompt of
        200 tokens costs ~5x less with 5 beams) and its cache is then copied to the G rows, which go on
        sharing the window's cross-attention keys/values.
        """
        group = self.n_group
        wanted = [self.sot_index, tokens.shape[1] - 1]  # only these two positions' logits are read
        if group == 1:
            self.cache = self.model.new_cache(tokens.shape[0])
            logits = self.model.logits(tokens, audio_features, self.cache, wanted)  # [B, 2, V]
            return logits[:, 0], logits[:, 1]
        distinct = tokens[::group]  # [A, T]
        length = distinct.shape[1]
        prefill = self.model.new_cache(distinct.shape[0], capacity=length)
        logits = self.model.logits(distinct, audio_features, prefill, wanted)  # [A, 2, V]
        cache = self.model.new_cache(tokens.shape[0])
        for source, target in zip(prefill.self_keys + prefill.self_values, cache.self_keys + cache.self_values,
                                  strict=True):
            target[:, :, :length] = source.repeat_interleave(group, dim=0)
        cache.cross_keys, cache.cross_values = prefill.cross_keys, prefill.cross_values
        cache.rows_per_segment = group
        cache.position = length
        self.cache = cache
        return logits[:, 0].repeat_interleave(group, dim=0), logits[:, 1].repeat_interleave(group, dim=0)

    def _main_loop(self, audio_features: Tensor, tokens: Tensor) -> tuple[Tensor, Tensor, list[float]]:
        """Decode until every row is done or the context is full: (tokens, sum_logprobs, no_speech_probs)."""
        sum_logprobs = torch.zeros(tokens.shape[0], device=tokens.device)
        try:
            sot_logits, logits = self._prefill(audio_features, tokens)
            # the no-speech probability is read after <|startoftranscript|>
            no_speech_probs = sot_logits.float().softmax(dim=-1)[:, self.tokenizer.no_speech].tolist()
            for step in range(self.sample_len):
                if step > 0:
                    logits = self.model.logits(tokens[:, -1:], None, self.cache)[:, -1]  # [B, V]
                for logit_filter in self.logit_filters:
                    logit_filter.apply(logits, tokens)
                tokens, completed = self.decoder.update(tokens, logits, sum_logprobs)
                if completed or tokens.shape[-1] > self.n_ctx:
                    break
        finally:
            self.cache = None
        return tokens, sum_logprobs, no_speech_probs

    @torch.no_grad()
    def run(self, mel: Tensor) -> list[DecodingResult]:
        """Decode log-mel windows [B, n_mels, 3000] (or their audio features [B, n_audio_ctx, D])."""
        self.decoder.reset()
        tokenizer = self.tokenizer
        audio_features = _audio_features(self.model, mel)
        n_audio = audio_features.shape[0]
        tokens = torch.tensor([self.initial_tokens], device=self.model.device).repeat(n_audio, 1)
        languages, language_probs = self._detect_language(audio_features, tokens)

        # the G candidates of a window are consecutive rows sharing its audio features in the cache
        tokens = tokens.repeat_interleave(self.n_group, dim=0)
        tokens, sum_logprobs, no_speech_probs = self._main_loop(audio_features, tokens)
        no_speech_probs = no_speech_probs[::self.n_group]

        tokens = tokens.reshape(n_audio, self.n_group, -1)
        sum_logprobs = sum_logprobs.reshape(n_audio, self.n_group)
        candidates, candidate_logprobs = self.decoder.finalize(tokens, sum_logprobs)
        # each candidate from the first sampled token up to (not including) its first eot
        sampled = [[sequence[self.sample_begin:int((sequence == tokenizer.eot).nonzero()[0, 0])]
                    for sequence in group] for group in candidates]
        selected = self.ranker.rank(sampled, candidate_logprobs)

        results = []
        for audio, choice in enumerate(selected):
            chosen = sampled[audio][choice].tolist()
            text = tokenizer.decode(chosen).strip()
            results.append(DecodingResult(
                language=languages[audio],
                language_probs=language_probs[audio] if language_probs is not None else None,
                tokens=chosen,
                text=text,
                avg_logprob=candidate_logprobs[audio][choice] / (len(chosen) + 1),
                no_speech_prob=no_speech_probs[audio],
                temperature=self.options.temperature,
                compression_ratio=compression_ratio(text),
            ))
        return results


@torch.no_grad()
def decode(model: Whisper, tokenizer: WhisperTokenizer, mel: Tensor,
           options: DecodingOptions | None = None, **kwargs: object) -> DecodingResult | list[DecodingResult]:
    """Decode 30 s windows: `mel` [n_mels, 3000] gives one result, [B, n_mels, 3000] a list of B. Audio
    features [B, n_audio_ctx, D] from `model.embed_audio` are taken as they are (no second encoder pass).
    Keyword arguments override fields of `options`."""
    options = options or DecodingOptions()
    if kwargs:
        options = replace(options, **kwargs)  # type: ignore[arg-type]
    single = mel.ndim == 2
    if single:
        mel = mel.unsqueeze(0)
    results = DecodingTask(model, tokenizer, options).run(mel)
    return results[0] if single else results
