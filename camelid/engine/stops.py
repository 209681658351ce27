"""Stop strings that may span token boundaries.

Text is held back while it could still be the start of a stop string; it is released as soon as it cannot.
"""

from __future__ import annotations

from collections.abc import Sequence


class StopMatcher:
    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.pending = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Add generated text; return (text safe to emit now, whether a stop string was hit)."""
        if not self.stops:
            return text, False
        self.pending += text
        hits = [(self.pending.find(s), s) for s in self.stops]
        hits = [(pos, s) for pos, s in hits if pos >= 0]
        if hits:
            pos = min(p for p, _ in hits)
            out, self.pending = self.pending[:pos], ""
            return out, True
        keep = self._held_suffix()
        cut = len(self.pending) - keep
        out, self.pending = self.pending[:cut], self.pending[cut:]
        return out, False

    def flush(self) -> str:
        """Release whatever is held (generation ended without a stop)."""
        out, self.pending = self.pending, ""
        return out

    def _held_suffix(self) -> int:
        """Length of the longest suffix of pending text that is a proper prefix of some stop string."""
        best = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(self.pending)), best, -1):
                if self.pending.endswith(stop[:n]):
                    best = n
                    break
        return best
