"""Whisper decoding: the logit filters on crafted logits, greedy and beam search on a tiny random Whisper with
a synthetic tokenizer, language detection, and (slow) token-for-token agreement with openai-whisper's
`decode` on tiny.en and a sentence spoken by Festival (oracle: openai-whisper, installed --no-deps by the test
command)."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from camelid.errors import BadRequest
from camelid.speech.decoding import (
    ApplyTimestampRules,
    BeamSearchDecoder,
    DecodingOptions,
    DecodingTask,
    GreedyDecoder,
    MaximumLikelihoodRanker,
    SuppressBlank,
    SuppressTokens,
    compression_ratio,
    decode,
    detect_language,
)
from camelid.speech.model import ModelDimensions, Whisper
from camelid.speech.tokenizer import WhisperTokenizer
from camelid.tokenizer.bpe import BYTE_TO_CHAR

INF = float("inf")
LANGUAGE_CODES = ("en", "zh", "de")
DIMS = ModelDimensions(n_mels=8, n_audio_ctx=10, n_audio_state=16, n_audio_head=2, n_audio_layer=1,
                       n_vocab=256 + 2 + len(LANGUAGE_CODES) + 6 + 1501, n_text_ctx=64, n_text_state=16,
                       n_text_head=2, n_text_layer=2)


def synthetic_vocabulary() -> list[str]:
    """Whisper's layout in small: 256 byte pieces (id = byte), eot, sot, three languages, the task and other
    special tokens, then the 1501 timestamps."""
    specials = ["<|endoftext|>", "<|startoftranscript|>", *(f"<|{code}|>" for code in LANGUAGE_CODES),
                "<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>",
                "<|notimestamps|>"]
    timestamps = [f"<|{i * 0.02:.2f}|>" for i in range(1501)]
    return [*BYTE_TO_CHAR, *specials, *timestamps]


@pytest.fixture(scope="module")
def tokenizer() -> WhisperTokenizer:
    return WhisperTokenizer(synthetic_vocabulary(), multilingual=False)


@pytest.fixture(scope="module")
def multilingual_tokenizer() -> WhisperTokenizer:
    return WhisperTokenizer(synthetic_vocabulary(), multilingual=True)


def random_whisper(dims: ModelDimensions = DIMS, seed: int = 0) -> Whisper:
    """Random weights scaled so that the logits are peaked (a few tokens dominate each step)."""
    generator = torch.Generator().manual_seed(seed)
    model = Whisper(dims)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("positional_embedding") and name.startswith("encoder"):
                continue
            if "ln" in name.split(".")[-2]:
                parameter.copy_(1.0 + 0.1 * torch.randn(parameter.shape, generator=generator)
                                if name.endswith("weight") else torch.zeros(parameter.shape))
            else:
                parameter.copy_(0.6 * torch.randn(parameter.shape, generator=generator))
    return model.prepare_for_decoding().eval()


@pytest.fixture(scope="module")
def model() -> Whisper:
    return random_whisper()


def random_mel(batch: int | None = None, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    shape = (DIMS.n_mels, 2 * DIMS.n_audio_ctx)
    return torch.randn((batch, *shape) if batch else shape, generator=generator)


# --- compression ratio --------------------------------------------------------------------------------------

def test_compression_ratio_is_utf8_length_over_zlib_length():
    for text in ("hello world", "la la la " * 40, "naïve café — ♪", ""):
        raw = text.encode("utf-8")
        assert compression_ratio(text) == len(raw) / len(zlib.compress(raw))
    assert compression_ratio("la la la " * 40) > 2.4 > compression_ratio("The quick brown fox jumps.")


# --- logit filters ------------------------------------------------------------------------------------------

def finite_positions(logits: torch.Tensor) -> list[list[int]]:
    return [row.isfinite().nonzero().flatten().tolist() for row in logits]


def test_suppress_blank_only_at_the_first_sampled_token(tokenizer):
    blank = tokenizer.encode(" ")
    assert blank == [32]
    rule = SuppressBlank(tokenizer, sample_begin=3)
    logits = torch.zeros(2, DIMS.n_vocab)
    rule.apply(logits, torch.zeros(2, 3, dtype=torch.long))
    assert (logits == -INF).nonzero().tolist() == [[0, 32], [0, tokenizer.eot], [1, 32], [1, tokenizer.eot]]
    logits = torch.zeros(2, DIMS.n_vocab)
    rule.apply(logits, torch.zeros(2, 4, dtype=torch.long))
    assert logits.isfinite().all()


def test_suppress_tokens_masks_exactly_those(tokenizer):
    logits = torch.randn(3, DIMS.n_vocab)
    SuppressTokens([5, 7, tokenizer.sot]).apply(logits, torch.zeros(3, 1, dtype=torch.long))
    assert sorted({column for _, column in (logits == -INF).nonzero().tolist()}) == [5, 7, tokenizer.sot]
    assert (logits == -INF).sum() == 9


def test_suppress_tokens_option_adds_non_speech_and_special_tokens(model, tokenizer):
    task = DecodingTask(model, tokenizer, DecodingOptions(suppress_tokens="-1,3"))
    suppress = task.logit_filters[1].suppress_tokens
    specials = {tokenizer.transcribe, tokenizer.translate, tokenizer.sot, tokenizer.sot_prev,
                tokenizer.sot_lm, tokenizer.no_speech}
    assert suppress == sorted({3, *tokenizer.non_speech_tokens, *specials})
    assert ord('"') in suppress and ord("-") not in suppress and -1 not in suppress
    task = DecodingTask(model, tokenizer, DecodingOptions(suppress_tokens=[4]))
    assert task.logit_filters[1].suppress_tokens == sorted({4, *specials})
    task = DecodingTask(model, tokenizer, DecodingOptions(suppress_tokens="", suppress_blank=False))
    assert not any(isinstance(rule, SuppressTokens) for rule in task.logit_filters)


def apply_timestamp_rules(tokenizer: WhisperTokenizer, sampled: list[int], logits: torch.Tensor | None = None,
                          max_initial: int | None = 50) -> torch.Tensor:
    """The rules after sampling `sampled` behind a prompt of two tokens. The default logits favour text (0)
    over timestamps (-20), so that the rule "timestamps when they outweigh the text" stays out of the way."""
    sample_begin = 2
    tokens = torch.tensor([[tokenizer.sot, tokenizer.sot + 1, *sampled]])
    if logits is None:
        logits = torch.zeros(1, DIMS.n_vocab)
        logits[0, tokenizer.timestamp_begin:] = -20.0
    logits = logits.clone()
    ApplyTimestampRules(tokenizer, sample_begin, max_initial).apply(logits, tokens)
    return logits[0]


def test_timestamp_rules_first_token_is_an_early_timestamp(tokenizer):
    begin = tokenizer.timestamp_begin
    logits = apply_timestamp_rules(tokenizer, [], max_initial=50)
    assert logits.isfinite().nonzero().flatten().tolist() == list(range(begin, begin + 51))
    logits = apply_timestamp_rules(tokenizer, [], max_initial=None)
    assert logits.isfinite().nonzero().flatten().tolist() == list(range(begin, DIMS.n_vocab))


def test_timestamp_rules_pairs_and_monotonic_times(tokenizer):
    begin, eot = tokenizer.timestamp_begin, tokenizer.eot
    # <|0.40|> text: text goes on, or the segment ends at a time >= 0.40 … (not before, not at 0.40 itself
    # since the pair's start was 0.40: a non-empty segment)
    logits = apply_timestamp_rules(tokenizer, [begin + 20, 65])
    finite = logits.isfinite()
    assert finite[:eot].all() and finite[eot]
    assert not finite[begin:begin + 21].any() and finite[begin + 21:].all()
    assert not finite[tokenizer.no_timestamps]
    # … text <|1.00|>: a segment just ended, so another timestamp (>= 1.00, it may start the next at once)
    # or eot; no text
    logits = apply_timestamp_rules(tokenizer, [begin + 20, 65, begin + 50])
    finite = logits.isfinite()
    assert not finite[:eot].any() and finite[eot]
    assert not finite[begin:begin + 50].any() and finite[begin + 50:].all()
    # … <|1.00|><|1.00|>: a pair (end, start): text must follow
    logits = apply_timestamp_rules(tokenizer, [begin + 20, 65, begin + 50, begin + 50])
    finite = logits.isfinite()
    assert finite[:eot + 1].all() and not finite[begin:].any()
    # the first sampled token is a timestamp: a pair counts it as the penultimate one, so text must follow
    logits = apply_timestamp_rules(tokenizer, [begin + 3])
    finite = logits.isfinite()
    assert finite[:eot + 1].all() and not finite[begin:].any()


def test_timestamp_rules_prefer_timestamps_when_their_total_probability_wins(tokenizer):
    begin = tokenizer.timestamp_begin
    # text token 65 is the single likeliest token, but the timestamps together outweigh it
    logits = torch.full((1, DIMS.n_vocab), -30.0)
    logits[0, 65] = 2.0
    logits[0, begin + 30:begin + 40] = 1.0
    result = apply_timestamp_rules(tokenizer, [begin + 20, 66], logits)
    assert not result[:begin].isfinite().any()
    assert result[begin + 30:begin + 40].eq(1.0).all()
    # with fewer timestamps, the text token wins: nothing but the pairing rules apply
    logits[0, begin + 32:begin + 40] = -30.0
    result = apply_timestamp_rules(tokenizer, [begin + 20, 66], logits)
    assert result[65] == 2.0 and result[:tokenizer.no_timestamps].isfinite().all()


def test_timestamp_rules_match_openai_whisper_on_random_histories(tokenizer):
    from whisper.decoding import ApplyTimestampRules as OpenAIRules  # the oracle

    generator = torch.Generator().manual_seed(0)
    begin = tokenizer.timestamp_begin
    for trial in range(200):
        length = int(torch.randint(0, 6, (1,), generator=generator))
        sampled = []
        for _ in range(length):  # mix text and (mostly increasing) timestamps
            is_timestamp = bool(torch.rand(1, generator=generator) < 0.5)
            sampled.append(begin + int(torch.randint(0, 60, (1,), generator=generator)) if is_timestamp
                           else int(torch.randint(0, 256, (1,), generator=generator)))
        tokens = torch.tensor([[tokenizer.sot, tokenizer.sot + 1, *sampled]] * 2)
        logits = torch.randn(2, DIMS.n_vocab, generator=generator) * 3
        logits[1, begin:] -= 4  # the second row mostly prefers text
        ours, theirs = logits.clone(), logits.clone()
        ApplyTimestampRules(tokenizer, 2, 25).apply(ours, tokens)
        OpenAIRules(tokenizer, 2, 25).apply(theirs, tokens)
        assert torch.equal(ours, theirs), f"trial {trial}: {sampled}"


# --- decoders -----------------------------------------------------------------------------------------------

def test_greedy_update_pads_finished_rows_with_eot():
    eot = 9
    decoder = GreedyDecoder(temperature=0.0, eot=eot)
    tokens = torch.tensor([[1, 2], [1, eot]])
    logits = torch.tensor([[0.0, 5.0] + [0.0] * 8, [0.0, 5.0] + [0.0] * 8])
    sums = torch.zeros(2)
    tokens, completed = decoder.update(tokens, logits, sums)
    assert tokens.tolist() == [[1, 2, 1], [1, eot, eot]] and not completed
    assert sums[0] == torch.log_softmax(logits[0], -1)[1] and sums[1] == 0


def test_beam_search_keeps_the_best_beams_and_collects_finished_candidates():
    eot = 3
    reorders = []
    decoder = BeamSearchDecoder(beam_size=2, eot=eot, reorder_cache=reorders.append)
    tokens = torch.tensor([[0], [0]])
    logprobs = torch.log(torch.tensor([0.05, 0.5, 0.15, 0.3]))  # token 1, then eot (3), then 2
    tokens, completed = decoder.update(tokens, logprobs.repeat(2, 1), torch.zeros(2))
    assert tokens.tolist() == [[0, 1], [0, 2]] and not completed
    assert reorders == [[1, 1]]  # both beams come from the last identical row, as in openai/whisper
    assert list(decoder.finished_sequences[0]) == [(0, eot)]
    sums = torch.tensor([np.log(0.5), np.log(0.15)], dtype=torch.float32)
    tokens, completed = decoder.update(tokens, logprobs.repeat(2, 1), sums)
    assert completed  # (0, 3) and (0, 1, 3): two finished candidates for two beams
    candidates, scores = decoder.finalize(tokens.reshape(1, 2, -1), sums.reshape(1, 2))
    assert [c.tolist() for c in candidates[0]] == [[0, eot], [0, 1, eot]]
    assert scores[0] == pytest.approx([np.log(0.3), np.log(0.5) + np.log(0.3)])


def test_ranker_length_normalization_and_penalty():
    tokens = [[torch.zeros(2), torch.zeros(10)]]
    assert MaximumLikelihoodRanker(None).rank(tokens, [[-2.0, -6.0]]) == [1]  # -1.0 vs -0.6
    assert MaximumLikelihoodRanker(0.0).rank(tokens, [[-2.0, -6.0]]) == [0]  # no length penalty


# --- decoding a tiny random Whisper -------------------------------------------------------------------------

def test_greedy_decoding_is_deterministic_and_well_formed(model, tokenizer):
    first = decode(model, tokenizer, random_mel())
    second = decode(model, tokenizer, random_mel())
    assert first == second
    assert first.language == "en" and first.temperature == 0.0
    assert first.tokens and first.tokens[0] == tokenizer.timestamp_begin  # max_initial_timestamp: 0.00 only
    assert tokenizer.eot not in first.tokens and len(first.tokens) <= DIMS.n_text_ctx // 2
    assert -20 < first.avg_logprob < 0 and 0 <= first.no_speech_prob <= 1
    assert first.text == tokenizer.decode(first.tokens).strip()
    assert first.compression_ratio == compression_ratio(first.text)
    timestamps = [t for t in first.tokens if t >= tokenizer.timestamp_begin]
    assert timestamps == sorted(timestamps)


@pytest.mark.parametrize("options", [{}, {"without_timestamps": True}, {"prompt": "ab cd", "prefix": "x"}])
def test_beam_search_of_one_beam_equals_greedy(model, tokenizer, options):
    for seed in range(3):
        mel = random_mel(seed=seed)
        greedy = decode(model, tokenizer, mel, DecodingOptions(**options))
        beam = decode(model, tokenizer, mel, DecodingOptions(beam_size=1, **options))
        assert beam.tokens == greedy.tokens
        assert beam.avg_logprob == pytest.approx(greedy.avg_logprob, abs=1e-5)
        assert beam.no_speech_prob == pytest.approx(greedy.no_speech_prob, abs=1e-6)


def test_beam_search_windows_in_a_batch_equal_each_alone(model, tokenizer):
    mel = random_mel(batch=3, seed=4)
    options = DecodingOptions(beam_size=3, patience=2.0)
    together = decode(model, tokenizer, mel, options)
    alone = [decode(model, tokenizer, mel[i], options) for i in range(3)]
    assert [r.tokens for r in together] == [r.tokens for r in alone]
    assert [r.avg_logprob for r in together] == pytest.approx([r.avg_logprob for r in alone], abs=1e-5)


def test_beam_search_finds_at_least_the_greedy_likelihood(model, tokenizer):
    """The likeliest finished beam is never worse than the greedy path (which beam search also tries)."""
    for seed in range(4):
        mel = random_mel(seed=seed)
        options = DecodingOptions(without_timestamps=True, sample_len=6, length_penalty=0.0)
        greedy = decode(model, tokenizer, mel, options)
        beam = decode(model, tokenizer, mel, dataclasses.replace(options, beam_size=4))
        # length_penalty 0: the ranking is by plain summed log-probability
        beam_sum = beam.avg_logprob * (len(beam.tokens) + 1)
        assert beam_sum >= greedy.avg_logprob * (len(greedy.tokens) + 1) - 1e-4


def test_sampling_is_deterministic_with_a_seed(model, tokenizer):
    """The options' seed, not torch's global RNG, decides the samples."""
    options = DecodingOptions(temperature=1.0, best_of=3)
    runs = []
    for seed in (0, 0, 1, 2, 3):
        torch.manual_seed(seed + 10)  # moves the global RNG: no effect
        runs.append(decode(model, tokenizer, random_mel(), dataclasses.replace(options, seed=seed)).tokens)
    assert runs[0] == runs[1]
    assert any(run != runs[0] for run in runs[2:])
    assert decode(model, tokenizer, random_mel(), options).temperature == 1.0


def test_initial_tokens_hold_prompt_sot_sequence_and_prefix(model, multilingual_tokenizer):
    tokenizer = multilingual_tokenizer
    task = DecodingTask(model, tokenizer, DecodingOptions(language="de", task="translate", prompt=[7, 8],
                                                          prefix=" hi", without_timestamps=True))
    de = tokenizer.sot + 3
    assert task.initial_tokens == (tokenizer.sot_prev, 7, 8, tokenizer.sot, de, tokenizer.translate,
                                   tokenizer.no_timestamps, 32, ord("h"), ord("i"))
    assert task.sample_begin == 10 and task.sot_index == 3
    long_prompt = list(range(100))
    task = DecodingTask(model, tokenizer, DecodingOptions(language="en", prompt=long_prompt))
    assert task.initial_tokens[1:-3] == tuple(long_prompt[-(DIMS.n_text_ctx // 2 - 1):])


def test_language_detection(model, tokenizer, multilingual_tokenizer):
    mel = random_mel(batch=2)
    tokens, probs = detect_language(model, multilingual_tokenizer, mel)
    assert len(probs) == 2 and all(set(p) == set(LANGUAGE_CODES) for p in probs)
    for row, p in enumerate(probs):
        assert sum(p.values()) == pytest.approx(1.0)
        assert int(tokens[row]) == multilingual_tokenizer.sot + 1 + LANGUAGE_CODES.index(max(p, key=p.get))
    token, single = detect_language(model, multilingual_tokenizer, mel[0])
    assert token.ndim == 0 and single == pytest.approx(probs[0], abs=1e-5)
    # decode detects it when no language is given, and writes it into the sot sequence
    result = decode(model, multilingual_tokenizer, mel[0])
    assert result.language == max(single, key=single.get)
    assert result.language_probs == pytest.approx(single, abs=1e-5)
    given = decode(model, multilingual_tokenizer, mel[0], language=result.language)
    assert given.tokens == result.tokens and given.language_probs is None
    with pytest.raises(BadRequest, match="English-only"):
        detect_language(model, tokenizer, mel)


@pytest.mark.parametrize("options, message", [
    ({"beam_size": 2, "best_of": 2}, "together"),
    ({"best_of": 2}, "temperature"),
    ({"patience": 2.0}, "patience"),
    ({"length_penalty": 2.0}, "length_penalty"),
    ({"task": "summarize"}, "task"),
    ({"beam_size": 0}, "beam_size"),
    ({"language": "klingon"}, "language"),
    ({"suppress_tokens": "1,x"}, "suppress_tokens"),
])
def test_bad_options_are_clear_errors(model, multilingual_tokenizer, options, message):
    with pytest.raises(BadRequest, match=message):
        decode(model, multilingual_tokenizer, random_mel(), DecodingOptions(**options))


def test_options_are_frozen():
    options = DecodingOptions()
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.temperature = 1.0  # type: ignore[misc]
    assert options.suppress_tokens == "-1" and options.max_initial_timestamp == 1.0


# --- tiny.en against openai-whisper (slow) ------------------------------------------------------------------

SENTENCE = "Please call Stella and ask her to bring these things with her from the store."


@pytest.fixture(scope="module")
def tiny_en():
    from camelid.speech.loaders.ct2 import load_whisper
    from camelid.store import resolve

    resolved = resolve("whisper:tiny.en")
    model, _ = load_whisper(resolved)
    return model, WhisperTokenizer.from_files(resolved)


@pytest.fixture(scope="module")
def sentence_mel(tmp_path_factory) -> torch.Tensor:
    from camelid.speech.audio import N_FRAMES, load_audio, log_mel_spectrogram, pad_or_trim

    if shutil.which("text2wave") is None:
        pytest.fail("Festival's text2wave is missing: apt-get install festival festvox-us-slt-hts")
    path = Path(tmp_path_factory.mktemp("decoding")) / "sentence.wav"
    subprocess.run(["text2wave", "-eval", "(voice_cmu_us_slt_arctic_hts)", "-F", "16000", "-o", str(path)],
                   input=SENTENCE.encode(), check=True, capture_output=True, timeout=60)
    return pad_or_trim(log_mel_spectrogram(load_audio(path)), N_FRAMES)


@pytest.mark.slow
@pytest.mark.parametrize("options", [
    {}, {"beam_size": 5}, {"without_timestamps": True}, {"beam_size": 5, "prompt": "Stella's shopping list"},
    {"temperature": 0.7, "best_of": 3}, {"beam_size": 3, "patience": 2.0, "length_penalty": 0.5},
])
def test_tiny_en_decodes_as_openai_whisper(tiny_en, sentence_mel, options):
    import whisper  # the oracle
    from whisper.model import ModelDimensions as OpenAIDimensions
    from whisper.model import Whisper as OpenAIWhisper

    model, tokenizer = tiny_en
    oracle = OpenAIWhisper(OpenAIDimensions(**dataclasses.asdict(model.dims)))
    oracle.load_state_dict({name: value.contiguous() for name, value in model.state_dict().items()})
    oracle.eval()
    torch.manual_seed(0)
    ours = decode(model, tokenizer, sentence_mel, DecodingOptions(**options))
    torch.manual_seed(0)
    theirs = whisper.decode(oracle, sentence_mel,
                            whisper.DecodingOptions(language="en", fp16=False, **options))
    assert ours.tokens == theirs.tokens and ours.text == theirs.text
    assert ours.avg_logprob == pytest.approx(theirs.avg_logprob, abs=1e-4)
    assert ours.no_speech_prob == pytest.approx(theirs.no_speech_prob, abs=1e-4)
    assert ours.compression_ratio == theirs.compression_ratio
    if not options:
        assert ours.text == SENTENCE
