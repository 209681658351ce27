"""Word error rate, the measure of transcription accuracy: word-level edit distance over the reference's words,
after lowercasing and removing punctuation and accents."""

from __future__ import annotations

import string
import unicodedata

PUNCTUATION = str.maketrans("", "", string.punctuation + "¿¡«»“”‘’")


def normalize_words(text: str) -> list[str]:
    """Lowercased words without punctuation or accents ("È" -> "e")."""
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return text.replace("-", " ").translate(PUNCTUATION).split()


def word_edits(reference: str, hypothesis: str) -> tuple[int, int]:
    """(substitutions + insertions + deletions, reference word count)."""
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, start=1):
        current = [i]
        for j, hyp_word in enumerate(hyp, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word)))
        previous = current
    return previous[-1], len(ref)


def word_error_rate(reference: str, hypothesis: str) -> float:
    edits, words = word_edits(reference, hypothesis)
    return edits / max(words, 1)
