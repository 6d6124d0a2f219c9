# Types of the compiled module built from inference/_native.c (python -m inference.native_build).
from collections.abc import Sequence

from _typeshed import ReadableBuffer

ABI: int

class FeatureIndex:
    def __init__(
        self,
        word_terms: Sequence[str],
        char_terms: Sequence[str],
        idf: ReadableBuffer,
        word_ngram: tuple[int, int],
        char_ngram: tuple[int, int],
    ) -> None: ...
    def transform(self, texts: Sequence[str], /) -> tuple[bytes, bytes, bytes]: ...

def analyse_ascii(
    text: str, max_chars: int, /
) -> (
    tuple[
        int,
        int,
        int,
        int,
        int,
        tuple[str, ...],
        int,
        int,
        tuple[str, ...],
        int,
        int,
        int,
        int,
        int,
        float,
    ]
    | None
): ...
