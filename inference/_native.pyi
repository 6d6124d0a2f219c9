# Types of the compiled module built from inference/_native.c (python -m inference.native_build).
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from _typeshed import ReadableBuffer, WriteableBuffer

ABI: int
SCREEN_RULES: tuple[str, ...]
SCREEN_SEVERITIES: tuple[str, ...]
SCREEN_FEATURES: int
SCREEN_MILD: int
SCREEN_NOTHING: int
SCREEN_LONG: int
SCREEN_SPAM_CUE: int
SCREEN_PYTHON: int
SCREEN_EXTRACT: int

class FeatureIndex:
    def __init__(
        self,
        word_terms: Sequence[str],
        char_terms: Sequence[str],
        idf: ReadableBuffer,
        word_ngram: tuple[int, int],
        char_ngram: tuple[int, int],
    ) -> None: ...
    def feed(
        self, texts: Sequence[str], /
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]: ...

# One item of a cue alternative: (ASCII characters, other characters, is \s, min, max or -1).
_CueItem = tuple[bytes, str, bool, int, int]

class Screen:
    def __init__(
        self,
        *,
        single: dict[str, Sequence[tuple[int, int]]],
        phrases: dict[str, int],
        starts: Sequence[str],
        phrase_starts: Sequence[str],
        targets: Sequence[str],
        strip_chars: str,
        leet: Mapping[str, str],
        keyboard_runs: Sequence[str],
        rare_pairs: Sequence[str],
        cues: Sequence[Sequence[Sequence[_CueItem]]],
        control_ranges: Sequence[tuple[int, int]],
        emoji_ranges: Sequence[tuple[int, int]],
        folds: str,
        is_nfc: Callable[[str], bool],
        counts_as_nonword: Callable[[str], bool],
        max_chars: int,
        min_outlier_chars: int,
    ) -> None: ...
    def screen(
        self, texts: Sequence[str], features: WriteableBuffer, /
    ) -> tuple[list[int], list[int]]: ...
    def screen_new(
        self, texts: Sequence[str], max_chars: int, /
    ) -> tuple[npt.NDArray[np.float32], list[int], list[int]]: ...
    def screen_extracted(
        self, text: str, rest: str, n_urls: int, n_contacts: int, row: WriteableBuffer, /
    ) -> int: ...

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
def normalize_ascii(text: str, max_chars: int, /) -> str | None: ...
def normalize_batch(
    texts: list[str], normalize: Callable[[str], str], max_chars: int, /
) -> list[str]: ...

class Results:
    def __init__(
        self,
        *,
        prediction: type[tuple[Any, ...]],
        sentiment_labels: tuple[str, ...],
        language_labels: tuple[str, ...],
        xs: Sequence[float],
        ys: Sequence[float],
        verdicts: list[tuple[tuple[str, ...], float]],
        nothing: int,
        long: int,
        outlier: tuple[str, ...],
    ) -> None: ...
    def build(
        self,
        sentiment: npt.NDArray[np.float64],
        language: npt.NDArray[np.float64],
        scores: npt.NDArray[np.float32] | None,
        codes: list[int] | None,
        overrides: Mapping[int, tuple[float, bool, tuple[str, ...]]] | None,
        categories: list[tuple[str, float]] | None,
        versions: dict[str, str],
        /,
    ) -> list[Any]: ...
