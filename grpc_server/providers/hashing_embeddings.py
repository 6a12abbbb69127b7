"""Offline text embeddings by feature hashing (the "hashing trick").

This is NOT a neural model and knows nothing about meaning: it has no
vocabulary, no training and no synonyms ("car" and "automobile" are unrelated
to it). What it does give is lexical similarity: texts sharing words, word
pairs or word fragments get similar vectors, so "a cat sat on a mat" is close
to "the cat sat on the mat" and "run quick" is close to "Running quickly".

Text features, after NFKC normalisation and lower-casing, with words being runs
of letters and digits (punctuation, case and spacing therefore do not matter):

- each word, weight WORD_WEIGHT (1.0);
- each pair of adjacent words, weight BIGRAM_WEIGHT (0.5): word order counts a little;
- each character trigram of each word padded as "<word>", weight TRIGRAM_WEIGHT
  (0.5) per trigram: shared stems and inflections ("running"/"run") overlap.

Token-id input uses each token id (WORD_WEIGHT) and each adjacent pair of ids
(BIGRAM_WEIGHT) as features.

Each feature is hashed with blake2b (8 bytes, stable across processes and
machines, unlike Python's salted hash()) to an index (hash mod dimensions) and
a sign (the top bit); signed hashing makes colliding features cancel on
average instead of piling up. The summed vector is L2-normalised. A text with
no features (empty, or only punctuation) embeds to the unit vector on index 0,
so every result is unit-length and cosine similarity is a plain dot product.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache
from itertools import pairwise

DEFAULT_DIMENSIONS = 256
MIN_DIMENSIONS = 1
MAX_DIMENSIONS = 4096

WORD_WEIGHT = 1.0
BIGRAM_WEIGHT = 0.5
TRIGRAM_WEIGHT = 0.5

# Index of the unit vector returned when a text or token list has no features.
EMPTY_INDEX = 0

# Letters and digits, any script; `_` is a word character for \w, so exclude it.
_WORD = re.compile(r"[^\W_]+")
_SIGN_BIT = 1 << 63

Feature = tuple[str, float]


def embed_text(text: str, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """Unit-length embedding of `text`; see the module docstring."""
    _check_dimensions(dimensions)
    return _embed(_text_features(text), dimensions)


def embed_tokens(tokens: Sequence[int], dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """Unit-length embedding of token ids: each id plus each adjacent pair."""
    _check_dimensions(dimensions)
    return _embed(_token_features(tokens), dimensions)


def count_tokens(text: str) -> int:
    """Number of words in `text`, as reported in usage (no real tokenizer here)."""
    return len(words(text))


def words(text: str) -> list[str]:
    """The words of `text`: NFKC-normalised, lower-cased runs of letters and digits."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity; for this module's unit vectors, simply the dot product."""
    norm = math.sqrt(math.fsum(x * x for x in a)) * math.sqrt(math.fsum(y * y for y in b))
    if norm == 0.0:
        return 0.0
    return math.fsum(x * y for x, y in zip(a, b, strict=True)) / norm


def _check_dimensions(dimensions: int) -> None:
    # bool is an int subclass; True as a dimension count is a caller bug.
    if isinstance(dimensions, bool) or not isinstance(dimensions, int):
        raise ValueError(f"dimensions must be an integer, got {dimensions!r}")
    if not MIN_DIMENSIONS <= dimensions <= MAX_DIMENSIONS:
        raise ValueError(f"dimensions must be {MIN_DIMENSIONS}..{MAX_DIMENSIONS}, got {dimensions}")


def _text_features(text: str) -> Iterable[Feature]:
    # Prefixes keep the namespaces apart: the word "cat" must not hash like the trigram "cat".
    tokens = words(text)
    for word in tokens:
        yield "w:" + word, WORD_WEIGHT
        padded = "<" + word + ">"
        for i in range(len(padded) - 2):
            yield "c:" + padded[i : i + 3], TRIGRAM_WEIGHT
    for first, second in pairwise(tokens):
        yield "b:" + first + " " + second, BIGRAM_WEIGHT


def _token_features(tokens: Sequence[int]) -> Iterable[Feature]:
    for token in tokens:
        yield f"t:{int(token)}", WORD_WEIGHT
    for first, second in pairwise(tokens):
        yield f"p:{int(first)},{int(second)}", BIGRAM_WEIGHT


@lru_cache(maxsize=1 << 16)
def _feature_hash(feature: str) -> int:
    # Cached: real text repeats words and trigrams heavily, and blake2b dominates the cost.
    return int.from_bytes(hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest(), "big")


def _embed(features: Iterable[Feature], dimensions: int) -> list[float]:
    # Accumulate sparsely: a sentence touches tens of indices, not thousands.
    sums: dict[int, float] = {}
    for feature, weight in features:
        hashed = _feature_hash(feature)
        index = hashed % dimensions
        sums[index] = sums.get(index, 0.0) + (-weight if hashed & _SIGN_BIT else weight)
    norm = math.sqrt(math.fsum(x * x for x in sums.values()))
    vector = [0.0] * dimensions
    if norm == 0.0:
        # No features, or (rarely) features that cancelled exactly: a fixed unit vector.
        vector[EMPTY_INDEX] = 1.0
        return vector
    for index, value in sums.items():
        vector[index] = value / norm
    return vector
