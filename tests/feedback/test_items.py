"""The fast path for batch items builds exactly what FeedbackInSerializer builds."""

from __future__ import annotations

import datetime as dt
import itertools
import random

from feedback.api.items import accept
from feedback.api.serializers import FeedbackInSerializer
from feedback.services import FeedbackInput

VALUES: dict[str, list[object]] = {
    "text": [
        "Ang bagal ng wifi",
        "  padded  ",
        "",
        "   ",
        "x" * 20_000,
        "x" * 20_001,
        "nul\x00inside",
        "lone \ud800 surrogate",
        "emoji 🙂 ok",
        3,
        None,
        ["list"],
    ],
    "source": ["form", " widget ", "", "s" * 50, "s" * 51, None, 7, "a\x00b"],
    "external_id": ["ext-1", "  ext-2 ", "", " ", None, "e" * 200, "e" * 201, 12],
    "author_ref": ["", "  ", "student-42", "r" * 200, "r" * 201, None, 1.5],
    "submitted_at": [
        "2026-11-01T08:00:00Z",
        "2026-11-01T08:00:00+08:00",
        "2026-11-01T08:00:00",
        "2026-11-01",
        "yesterday",
        "",
        None,
        1700000000,
    ],
    "metadata": [{}, {"grade": 7, "tags": ["a"], "n": None}, None, [], "x", {"k": {"d": 1}}],
}


def serializer_input(item: object) -> FeedbackInput | None:
    serializer = FeedbackInSerializer(data=item)
    return serializer.to_input() if serializer.is_valid() else None


def items(count: int, seed: int):
    rng = random.Random(seed)
    names = list(VALUES)
    for _ in range(count):
        chosen = [n for n in names if n == "text" or rng.random() < 0.6]
        item = {name: rng.choice(VALUES[name]) for name in chosen}
        if rng.random() < 0.05:
            item["unknown"] = 1
        if rng.random() < 0.05:
            item.pop("text")
        yield item


def test_every_item_the_fast_path_accepts_equals_the_serializer_result(settings):
    accepted = 0
    for item in itertools.chain(items(10_000, seed=7), [[], "text", None, 5]):
        fast = accept(item)
        if fast is not None:
            accepted += 1
            assert fast == serializer_input(item), item
    assert accepted > 300  # the comparison is not vacuous


def test_ordinary_items_take_the_fast_path():
    item = {
        "text": "Maayo kaayo ang serbisyo",
        "source": "form",
        "external_id": "f-1",
        "submitted_at": "2026-11-01T08:00:00+08:00",
        "metadata": {"campus": "Cebu"},
    }
    fast = accept(item)
    assert fast is not None
    assert fast.submitted_at == dt.datetime(2026, 11, 1, 0, 0, tzinfo=dt.UTC)
    assert accept({"text": "ok"}) == serializer_input({"text": "ok"})
