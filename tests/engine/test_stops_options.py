"""Stop strings across token boundaries; options validation with Ollama names."""

from __future__ import annotations

import pytest

from camelid.engine.options import Options
from camelid.engine.stops import StopMatcher
from camelid.errors import BadRequest


def feed_all(stops: list[str], pieces: list[str]) -> tuple[str, bool]:
    matcher = StopMatcher(stops)
    out, hit = [], False
    for piece in pieces:
        text, hit = matcher.feed(piece)
        out.append(text)
        if hit:
            break
    if not hit:
        out.append(matcher.flush())
    return "".join(out), hit


def test_stop_spanning_pieces() -> None:
    assert feed_all(["END"], ["Hello E", "N", "D and more"]) == ("Hello ", True)
    assert feed_all(["\n\n"], ["a\n", "\nb"]) == ("a", True)


def test_near_miss_released() -> None:
    assert feed_all(["END"], ["Hello E", "NX", "!"]) == ("Hello ENX!", False)
    matcher = StopMatcher(["abc"])
    assert matcher.feed("xxab") == ("xx", False)  # "ab" held: it may start "abc"
    assert matcher.feed("d") == ("abd", False)


def test_earliest_of_several_stops() -> None:
    assert feed_all(["world", "lo"], ["hello world"]) == ("hel", True)


def test_options_merge_and_validate() -> None:
    base = Options()
    assert base.temperature == 0.8 and base.top_k == 40 and base.num_predict == -1
    opts = base.merged({"temperature": "0.2", "top_k": 5, "stop": "###", "unknown_thing": 1})
    assert opts.temperature == 0.2 and opts.top_k == 5 and opts.stop == ("###",)
    assert opts.sampling.temperature == 0.2
    with pytest.raises(BadRequest, match="top_k"):
        base.merged({"top_k": "many"})
    with pytest.raises(BadRequest):
        base.merged({"num_ctx": 0})
