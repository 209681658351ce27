"""Transcription of audio of any length, following openai/whisper's `transcribe.py` and `timing.py`.

The log-mel of the whole audio (with 30 s of silence appended) is read in 30 s windows. Each window is
encoded once and decoded with temperature fallback: at temperature 0 (greedy or beam search), and again at
each higher temperature (sampling, best of N) while the text is too repetitive (zlib compression ratio above
`compression_ratio_threshold`) or too improbable (average log-probability below `logprob_threshold`), unless
the window is silence (no-speech probability above `no_speech_threshold` with a low log-probability), which is
skipped. The decoded timestamp tokens cut the window into segments; the next window starts at the last
complete segment's end (or after the window, when the text ends with a lone timestamp). The text so far is
the next window's prompt unless `condition_on_previous_text` is off or the window needed a temperature above
0.5. A multilingual model detects the language once, on the first 30 s.

Word timestamps come from the cross-attention of the alignment heads: teacher-forced over a window's text,
their attention over the audio frames (softmax, normalized per token, median-filtered) is aligned to the
tokens by dynamic time warping, as openai/whisper does.

Differences, on purpose: a window is encoded once, not once per temperature (same result); segment ends are
clamped to the audio's duration (a timestamp may point into the appended silence); an English-only model
refuses a language other than English instead of ignoring it; a window that would not advance is passed.
Not implemented: openai/whisper's clip_timestamps, carry_initial_prompt and hallucination_silence_threshold.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from camelid.errors import BadRequest
from camelid.speech.audio import (
    FRAMES_PER_SECOND,
    HOP_LENGTH,
    N_FRAMES,
    N_SAMPLES,
    SAMPLE_RATE,
    TOKENS_PER_SECOND,
    AudioSource,
    load_audio,
    log_mel_spectrogram,
    pad_or_trim,
)
from camelid.speech.decoding import DecodingOptions, DecodingResult, decode, detect_language
from camelid.speech.model import Whisper
from camelid.speech.tokenizer import TASKS, WhisperTokenizer
from camelid.speech.writers import Segment, Transcript, Word

__all__ = ["FallbackRules", "add_word_timestamps", "dtw", "find_alignment", "median_filter", "transcribe"]

PREPEND_PUNCTUATIONS = "\"'“¿([{-"  # merged with the next word
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"  # merged with the previous word
ProgressCallback = Callable[[float, float], None]  # (seconds done, seconds in all)


@dataclass(frozen=True)
class FallbackRules:
    """When a window's decode is retried at the next temperature, and when it counts as silence."""

    compression_ratio_threshold: float | None = 2.4  # above: too repetitive
    logprob_threshold: float | None = -1.0  # average log-probability below: too improbable
    no_speech_threshold: float | None = 0.6  # no-speech probability above (and improbable text): silence

    def is_silence(self, result: DecodingResult) -> bool:
        return (self.no_speech_threshold is not None and result.no_speech_prob > self.no_speech_threshold
                and self.logprob_threshold is not None and result.avg_logprob < self.logprob_threshold)

    def needs_fallback(self, result: DecodingResult) -> bool:
        too_repetitive = (self.compression_ratio_threshold is not None
                          and result.compression_ratio > self.compression_ratio_threshold)
        too_improbable = self.logprob_threshold is not None and result.avg_logprob < self.logprob_threshold
        return (too_repetitive or too_improbable) and not self.is_silence(result)

    def should_skip(self, result: DecodingResult) -> bool:
        """Silence: the no-speech probability is high and the log-probability does not overrule it."""
        if self.no_speech_threshold is None or result.no_speech_prob <= self.no_speech_threshold:
            return False
        return self.logprob_threshold is None or result.avg_logprob <= self.logprob_threshold


def transcribe(
    model: Whisper,
    tokenizer: WhisperTokenizer,
    audio: AudioSource | np.ndarray | Tensor,
    *,
    language: str | None = None,
    task: str = "transcribe",
    temperature: float | Sequence[float] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
    compression_ratio_threshold: float | None = 2.4,
    logprob_threshold: float | None = -1.0,
    no_speech_threshold: float | None = 0.6,
    condition_on_previous_text: bool = True,
    initial_prompt: str | None = None,
    word_timestamps: bool = False,
    beam_size: int | None = None,
    best_of: int | None = 5,
    patience: float | None = None,
    length_penalty: float | None = None,
    suppress_tokens: str | list[int] | None = "-1",
    suppress_blank: bool = True,
    prepend_punctuations: str = PREPEND_PUNCTUATIONS,
    append_punctuations: str = APPEND_PUNCTUATIONS,
    progress: ProgressCallback | None = None,
    seed: int = 0,
) -> Transcript:
    """Transcribe (or translate into English) audio: a path, file bytes, or 16 kHz mono samples.

    `language` None or "auto" detects it (multilingual models; English-only models are "en"). `temperature`
    is the fallback sequence; `beam_size` applies at temperature 0, `best_of` above it. `progress` is called
    after each window with (seconds done, seconds in all). `seed` seeds the sampling of the fallbacks (per window):
    the same audio gives the same transcript run after run.
    """
    if task not in TASKS:
        raise BadRequest(f"unknown task '{task}': use transcribe or translate")
    samples = _waveform(audio)
    duration = samples.shape[-1] / SAMPLE_RATE
    mel = log_mel_spectrogram(samples, model.dims.n_mels, padding=N_SAMPLES)  # [n_mels, frames + 3000]
    content_frames = mel.shape[-1] - N_FRAMES
    content_duration = content_frames * HOP_LENGTH / SAMPLE_RATE
    language = _resolve_language(model, tokenizer, mel, language)
    temperatures = (temperature,) if isinstance(temperature, (int, float)) else tuple(temperature)
    if not temperatures:
        raise BadRequest("temperature needs at least one value")
    rules = FallbackRules(compression_ratio_threshold, logprob_threshold, no_speech_threshold)
    options = DecodingOptions(task=task, language=language, beam_size=beam_size, best_of=best_of,
                              patience=patience, length_penalty=length_penalty,
                              suppress_tokens=suppress_tokens, suppress_blank=suppress_blank, seed=seed)

    input_stride = N_FRAMES // model.dims.n_audio_ctx  # mel frames per output token: 2
    time_precision = input_stride * HOP_LENGTH / SAMPLE_RATE  # seconds per timestamp step: 0.02
    initial_prompt_tokens = tokenizer.encode(" " + initial_prompt.strip()) if initial_prompt else []
    all_tokens: list[int] = list(initial_prompt_tokens)
    all_segments: list[Segment] = []
    prompt_reset_since = 0
    last_speech_timestamp = 0.0
    seek = 0
    while seek < content_frames:
        time_offset = seek * HOP_LENGTH / SAMPLE_RATE
        segment_size = min(N_FRAMES, content_frames - seek)
        mel_segment = pad_or_trim(mel[:, seek:seek + segment_size], N_FRAMES)
        audio_features = model.embed_audio(mel_segment[None])  # [1, n_audio_ctx, D]
        prompt = all_tokens[prompt_reset_since:]
        result = _decode_with_fallback(model, tokenizer, audio_features, replace(options, prompt=prompt),
                                       temperatures, rules)
        previous_seek = seek
        if rules.should_skip(result):
            seek += segment_size  # silence: on to the next window
        else:
            window = _WindowSegments(tokenizer, result, seek, time_offset, time_precision, segment_size)
            current = window.segments
            seek += window.seek_advance(input_stride)
            if word_timestamps:
                add_word_timestamps(current, model, tokenizer, audio_features, segment_size, language, task,
                                    prepend_punctuations, append_punctuations, last_speech_timestamp)
                last_word_end = _last_end(current)
                if not window.single_timestamp_ending and last_word_end is not None \
                        and last_word_end > time_offset:
                    seek = round(last_word_end * FRAMES_PER_SECOND)
                if last_word_end is not None:
                    last_speech_timestamp = last_word_end
            for segment in current:
                _finish_segment(segment, len(all_segments), content_duration)
                all_segments.append(segment)
                all_tokens.extend(segment.tokens or [])
            if not condition_on_previous_text or result.temperature > 0.5:
                prompt_reset_since = len(all_tokens)  # a high temperature's text is no good prompt
        if seek <= previous_seek:
            # a safety net: the timestamp rules make every window advance; only a word-timestamp seek that
            # rounds back to the window's start could stay, and decode the same window again
            seek = previous_seek + segment_size
        if progress is not None:
            progress(min(content_frames, seek) * HOP_LENGTH / SAMPLE_RATE, content_duration)

    text = tokenizer.decode(all_tokens[len(initial_prompt_tokens):])
    return Transcript(text=text, segments=all_segments, language=language, duration=duration)


def _waveform(audio: AudioSource | np.ndarray | Tensor) -> Tensor:
    """16 kHz mono float32 samples of a path, file bytes, or samples."""
    if torch.is_tensor(audio):
        samples = audio.detach().to(device="cpu", dtype=torch.float32)
    else:
        if not isinstance(audio, np.ndarray):
            audio = load_audio(audio)
        array = np.asarray(audio, dtype=np.float32)
        samples = torch.from_numpy(array if array.flags.writeable else array.copy())
    if samples.ndim != 1:
        raise BadRequest(f"audio samples must be one mono channel, got an array of shape "
                         f"{list(samples.shape)}")
    return samples


def _resolve_language(model: Whisper, tokenizer: WhisperTokenizer, mel: Tensor, language: str | None) -> str:
    """The language code to decode with: given, or detected on the first 30 s (multilingual models)."""
    if language is not None and language.strip().lower() not in ("", "auto"):
        code = tokenizer.language_code(language)
        if not tokenizer.multilingual and code != "en":
            raise BadRequest(f"this Whisper model is English-only: it cannot transcribe '{language}'")
        return code
    if not tokenizer.multilingual:
        return "en"
    _, probs = detect_language(model, tokenizer, pad_or_trim(mel, N_FRAMES))
    assert isinstance(probs, dict)
    return max(probs, key=probs.__getitem__)


def _decode_with_fallback(model: Whisper, tokenizer: WhisperTokenizer, audio_features: Tensor,
                          options: DecodingOptions, temperatures: tuple[float, ...],
                          rules: FallbackRules) -> DecodingResult:
    """Decode at each temperature in turn until the result passes `rules` (the last one is kept anyway)."""
    result: DecodingResult | None = None
    for temperature in temperatures:
        if temperature > 0:  # sampling: no beams
            attempt = replace(options, temperature=temperature, beam_size=None, patience=None)
        else:  # greedy or beam search: no best-of
            attempt = replace(options, temperature=temperature, best_of=None)
        decoded = decode(model, tokenizer, audio_features, attempt)
        assert isinstance(decoded, list)
        result = decoded[0]
        if not rules.needs_fallback(result):
            break
    assert result is not None
    return result


class _WindowSegments:
    """The segments of one decoded window, cut at consecutive timestamp tokens, and where to seek next."""

    def __init__(self, tokenizer: WhisperTokenizer, result: DecodingResult, seek: int, time_offset: float,
                 time_precision: float, segment_size: int) -> None:
        self.tokenizer = tokenizer
        self.result = result
        self.seek = seek
        self.segment_size = segment_size
        tokens = result.tokens
        begin = tokenizer.timestamp_begin
        is_timestamp = [token >= begin for token in tokens]
        self.single_timestamp_ending = is_timestamp[-2:] == [False, True]
        # a segment ends after each pair of consecutive timestamps (end of one, start of the next)
        consecutive = [i + 1 for i in range(len(tokens) - 1) if is_timestamp[i] and is_timestamp[i + 1]]
        self.last_timestamp: int | None = None  # position of the last complete segment's end
        self.segments: list[Segment] = []
        if consecutive:
            slices = consecutive + ([len(tokens)] if self.single_timestamp_ending else [])
            last_slice = 0
            for current_slice in slices:
                sliced = tokens[last_slice:current_slice]
                start = time_offset + (sliced[0] - begin) * time_precision
                end = time_offset + (sliced[-1] - begin) * time_precision
                self.segments.append(self._segment(start, end, sliced))
                last_slice = current_slice
            self.last_timestamp = tokens[last_slice - 1] - begin
        else:
            segment_duration = segment_size * HOP_LENGTH / SAMPLE_RATE
            timestamps = [token for token in tokens if token >= begin]
            if timestamps and timestamps[-1] != begin:  # no pair, but a timestamp: the text ends there
                segment_duration = (timestamps[-1] - begin) * time_precision
            self.segments.append(self._segment(time_offset, time_offset + segment_duration, tokens))

    def _segment(self, start: float, end: float, tokens: list[int]) -> Segment:
        result = self.result
        text = self.tokenizer.decode([token for token in tokens if token < self.tokenizer.eot])
        return Segment(id=0, start=start, end=end, text=text, seek=self.seek, tokens=list(tokens),
                       temperature=result.temperature, avg_logprob=result.avg_logprob,
                       compression_ratio=result.compression_ratio, no_speech_prob=result.no_speech_prob)

    def seek_advance(self, input_stride: int) -> int:
        """Mel frames to move on: to the last complete segment's end, or past the window when the text ends
        with a lone timestamp (nothing after it) or has no timestamp pair."""
        if self.last_timestamp is not None and not self.single_timestamp_ending:
            return self.last_timestamp * input_stride
        return self.segment_size


def _finish_segment(segment: Segment, segment_id: int, content_duration: float) -> None:
    """Number the segment, clamp its times to the audio, and empty it if it has no length or no text."""
    segment.id = segment_id
    segment.end = min(segment.end, content_duration)
    segment.start = min(segment.start, segment.end)
    if segment.start == segment.end or segment.text.strip() == "":
        segment.text = ""
        segment.tokens = []
        if segment.words is not None:
            segment.words = []


def _last_end(segments: list[Segment]) -> float | None:
    """The end of the last word, or of the last segment if no segment has words."""
    for segment in reversed(segments):
        for word in reversed(segment.words or []):
            return word.end
    return segments[-1].end if segments else None


# --- word timestamps (openai/whisper's timing.py) -----------------------------------------------------------

@dataclass
class WordTiming:
    word: str
    tokens: list[int]
    start: float  # seconds from the window's start
    end: float
    probability: float  # mean probability of the word's tokens


def median_filter(x: Tensor, filter_width: int) -> Tensor:
    """Median over a sliding window of odd `filter_width` along the last dimension (reflect-padded)."""
    pad_width = filter_width // 2
    if x.shape[-1] <= pad_width:
        return x  # too short to reflect-pad
    ndim = x.ndim
    if ndim <= 2:  # reflect padding wants 3 or 4 dimensions
        x = x[None, None, :]
    x = F.pad(x, (pad_width, pad_width, 0, 0), mode="reflect")
    result = x.unfold(-1, filter_width, 1).sort()[0][..., pad_width]
    return result[0, 0] if ndim <= 2 else result


def dtw(cost_matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dynamic time warping of an [N, M] cost matrix: the (row, column) indices of the cheapest monotonic
    path from (0, 0) to (N-1, M-1). openai/whisper's recurrence and tie-breaking (diagonal, then up, then
    left), computed one anti-diagonal at a time (cells on an anti-diagonal depend only on the two before)."""
    x = np.asarray(cost_matrix, dtype=np.float64)
    n, m = x.shape
    cost = np.full((n + 1, m + 1), np.inf, dtype=np.float32)
    trace = np.full((n + 1, m + 1), -1, dtype=np.int8)
    cost[0, 0] = 0
    for diagonal in range(2, n + m + 1):
        i = np.arange(max(1, diagonal - m), min(n, diagonal - 1) + 1)
        j = diagonal - i
        c0, c1, c2 = cost[i - 1, j - 1], cost[i - 1, j], cost[i, j - 1]
        take0 = (c0 < c1) & (c0 < c2)
        take1 = ~take0 & (c1 < c0) & (c1 < c2)
        best = np.where(take0, c0, np.where(take1, c1, c2))
        cost[i, j] = x[i - 1, j - 1] + best
        trace[i, j] = np.where(take0, 0, np.where(take1, 1, 2))
    return _backtrace(trace)


def _backtrace(trace: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    i, j = trace.shape[0] - 1, trace.shape[1] - 1
    trace[0, :] = 2
    trace[:, 0] = 1
    path = []
    while i > 0 or j > 0:
        path.append((i - 1, j - 1))
        step = trace[i, j]
        if step == 0:
            i, j = i - 1, j - 1
        elif step == 1:
            i -= 1
        else:
            j -= 1
    indices = np.array(path[::-1]).T
    return indices[0], indices[1]


@torch.no_grad()
def alignment_attention(model: Whisper, tokens: Tensor, audio_features: Tensor) -> tuple[Tensor, Tensor]:
    """Teacher-forced decoder pass over `tokens` [T]: (logits [T, V], the alignment heads' cross-attention
    scores before softmax [heads, T, n_audio_ctx]).

    The model does not return attention weights, so the queries are caught on the way (a forward hook on
    each layer's cross-attention query projection) and multiplied with the cached audio keys."""
    heads = model.alignment_heads.nonzero().tolist()  # [(layer, head), …]
    layers = sorted({layer for layer, _ in heads})
    queries: dict[int, Tensor] = {}
    hooks = [model.decoder.blocks[layer].cross_attn.query.register_forward_hook(
        lambda _module, _inputs, output, layer=layer: queries.__setitem__(layer, output))
        for layer in layers]
    try:
        cache = model.new_cache(1, capacity=tokens.shape[0])
        logits = model.logits(tokens[None], audio_features, cache)[0]
    finally:
        for hook in hooks:
            hook.remove()
    assert cache.cross_keys is not None
    scores = []
    for layer, head in heads:
        attention = model.decoder.blocks[layer].cross_attn
        query = attention.split_heads(queries[layer])[0, head]  # [T, d]
        keys = cache.cross_keys[layer][0, head]  # [n_audio_ctx, d]
        scores.append(query @ keys.T / math.sqrt(query.shape[-1]))
    return logits, torch.stack(scores)


def find_alignment(model: Whisper, tokenizer: WhisperTokenizer, sot_sequence: tuple[int, ...],
                   text_tokens: list[int], audio_features: Tensor, num_frames: int, language: str | None,
                   medfilt_width: int = 7, qk_scale: float = 1.0) -> list[WordTiming]:
    """Words of `text_tokens` with their start and end in the window, by DTW over the alignment heads."""
    if not text_tokens:
        return []
    tokens = torch.tensor([*sot_sequence, tokenizer.no_timestamps, *text_tokens, tokenizer.eot])
    logits, scores = alignment_attention(model, tokens, audio_features)
    sampled_logits = logits[len(sot_sequence):, :tokenizer.eot]
    token_probs = sampled_logits.softmax(dim=-1)
    text_token_probs = token_probs[np.arange(len(text_tokens)), text_tokens].tolist()

    weights = scores[:, :, :num_frames // 2]  # the audio, not the padding
    weights = (weights * qk_scale).softmax(dim=-1)
    std, mean = torch.std_mean(weights, dim=-2, keepdim=True, unbiased=False)
    weights = median_filter((weights - mean) / std, medfilt_width)
    matrix = weights.mean(dim=0)[len(sot_sequence):-1]  # <|notimestamps|> and the text tokens
    text_indices, time_indices = dtw(-matrix.double().numpy())

    words, word_tokens = tokenizer.split_to_word_tokens(text_tokens + [tokenizer.eot], language)
    if len(word_tokens) <= 1:
        return []  # eot only
    word_boundaries = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))
    jumps = np.pad(np.diff(text_indices), (1, 0), constant_values=1).astype(bool)
    jump_times = time_indices[jumps] / TOKENS_PER_SECOND
    start_times = jump_times[word_boundaries[:-1]]
    end_times = jump_times[word_boundaries[1:]]
    probabilities = [float(np.mean(text_token_probs[i:j]))
                     for i, j in itertools.pairwise(word_boundaries)]
    return [WordTiming(word, pieces, float(start), float(end), probability)
            for word, pieces, start, end, probability
            in zip(words, word_tokens, start_times, end_times, probabilities, strict=False)]


def merge_punctuations(alignment: list[WordTiming], prepended: str, appended: str) -> None:
    """Fold opening punctuation into the next word and closing punctuation into the previous one."""
    i, j = len(alignment) - 2, len(alignment) - 1
    while i >= 0:
        previous, following = alignment[i], alignment[j]
        if previous.word.startswith(" ") and previous.word.strip() in prepended:
            following.word = previous.word + following.word
            following.tokens = previous.tokens + following.tokens
            previous.word, previous.tokens = "", []
        else:
            j = i
        i -= 1
    i, j = 0, 1
    while j < len(alignment):
        previous, following = alignment[i], alignment[j]
        if not previous.word.endswith(" ") and following.word in appended:
            previous.word = previous.word + following.word
            previous.tokens = previous.tokens + following.tokens
            following.word, following.tokens = "", []
        else:
            i = j
        j += 1


def add_word_timestamps(segments: list[Segment], model: Whisper, tokenizer: WhisperTokenizer,
                        audio_features: Tensor, num_frames: int, language: str, task: str = "transcribe",
                        prepend_punctuations: str = PREPEND_PUNCTUATIONS,
                        append_punctuations: str = APPEND_PUNCTUATIONS,
                        last_speech_timestamp: float = 0.0) -> None:
    """Give each segment of one window its words (`Segment.words`), and adjust the segment's start and end
    to them, with openai/whisper's fixes for over-long words at sentence and pause boundaries."""
    if not segments:
        return
    text_tokens_per_segment = [[token for token in segment.tokens or [] if token < tokenizer.eot]
                               for segment in segments]
    text_tokens = list(itertools.chain.from_iterable(text_tokens_per_segment))
    sot_sequence = tokenizer.sot_sequence(language, task)
    alignment = find_alignment(model, tokenizer, sot_sequence, text_tokens, audio_features, num_frames,
                               language)
    durations = np.array([timing.end - timing.start for timing in alignment])
    durations = durations[durations.nonzero()]
    median_duration = min(0.7, float(np.median(durations))) if len(durations) else 0.0
    max_duration = median_duration * 2

    if len(durations):  # words at sentence boundaries are no longer than twice the median word
        sentence_end_marks = ".。!！?？"
        for i in range(1, len(alignment)):
            if alignment[i].end - alignment[i].start > max_duration:
                if alignment[i].word in sentence_end_marks:
                    alignment[i].end = alignment[i].start + max_duration
                elif alignment[i - 1].word in sentence_end_marks:
                    alignment[i].start = alignment[i].end - max_duration
    merge_punctuations(alignment, prepend_punctuations, append_punctuations)

    time_offset = (segments[0].seek or 0) * HOP_LENGTH / SAMPLE_RATE
    word_index = 0
    for segment, segment_text_tokens in zip(segments, text_tokens_per_segment, strict=True):
        saved_tokens = 0
        words: list[Word] = []
        while word_index < len(alignment) and saved_tokens < len(segment_text_tokens):
            timing = alignment[word_index]
            if timing.word:
                words.append(Word(start=round(time_offset + timing.start, 2),
                                  end=round(time_offset + timing.end, 2),
                                  text=timing.word, probability=timing.probability))
            saved_tokens += len(timing.tokens)
            word_index += 1
        if words:
            _fix_segment_edges(segment, words, median_duration, max_duration, last_speech_timestamp)
            last_speech_timestamp = segment.end
        segment.words = words


def _fix_segment_edges(segment: Segment, words: list[Word], median_duration: float, max_duration: float,
                       last_speech_timestamp: float) -> None:
    """openai/whisper's fixes: the first word after a pause, and the segment's own start/end, against
    words that the alignment stretched too long."""
    first = words[0]
    if first.end - last_speech_timestamp > median_duration * 4 and (
            first.end - first.start > max_duration
            or (len(words) > 1 and words[1].end - first.start > max_duration * 2)):
        if len(words) > 1 and words[1].end - words[1].start > max_duration:
            boundary = max(words[1].end / 2, words[1].end - max_duration)
            first.end = words[1].start = boundary
        first.start = max(0, first.end - max_duration)
    if segment.start < first.end and segment.start - 0.5 > first.start:
        first.start = max(0, min(first.end - median_duration, segment.start))
    else:
        segment.start = first.start
    last = words[-1]
    if segment.end > last.start and segment.end + 0.5 < last.end:
        last.end = max(last.start + median_duration, segment.end)
    else:
        segment.end = last.end
