"""The hashing embedder: unit vectors, stable across processes, and lexically sensible similarities."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from grpc_server.providers.hashing_embeddings import (
    DEFAULT_DIMENSIONS,
    EMPTY_INDEX,
    MAX_DIMENSIONS,
    cosine,
    count_tokens,
    embed_text,
    embed_tokens,
)

REPO = Path(__file__).resolve().parents[2]
SAMPLE = "The quick brown fox, naïve café — ﬁnal Ⅻ 42!"


def _norm(vector: list[float]) -> float:
    return math.sqrt(math.fsum(x * x for x in vector))


def _text_cos(a: str, b: str, dimensions: int = DEFAULT_DIMENSIONS) -> float:
    return cosine(embed_text(a, dimensions), embed_text(b, dimensions))


@pytest.mark.parametrize("text", ["hello", "the cat sat on the mat", SAMPLE, "x" * 5000, "", "  ", "?!,;"])
@pytest.mark.parametrize("dimensions", [1, 2, 64, DEFAULT_DIMENSIONS, MAX_DIMENSIONS])
def test_text_vectors_are_unit_length(text: str, dimensions: int) -> None:
    vector = embed_text(text, dimensions)
    assert len(vector) == dimensions
    assert abs(_norm(vector) - 1.0) < 1e-9


@pytest.mark.parametrize("tokens", [[], [7], [1, 2, 3], list(range(1000)), [-5, 0, 2**40]])
def test_token_vectors_are_unit_length(tokens: list[int]) -> None:
    vector = embed_tokens(tokens)
    assert len(vector) == DEFAULT_DIMENSIONS
    assert abs(_norm(vector) - 1.0) < 1e-9


@pytest.mark.parametrize("text", ["", "   \n\t", "...!?"])
def test_featureless_text_is_the_fixed_unit_vector(text: str) -> None:
    expected = [0.0] * 8
    expected[EMPTY_INDEX] = 1.0
    assert embed_text(text, 8) == expected
    assert embed_tokens([], 8) == expected


def test_same_input_same_vector_within_a_process() -> None:
    assert embed_text(SAMPLE) == embed_text(SAMPLE)
    assert embed_tokens([3, 1, 4, 1, 5]) == embed_tokens([3, 1, 4, 1, 5])


@pytest.mark.slow
@pytest.mark.parametrize("hash_seed", ["1", "4242"])
def test_same_vector_in_another_process(hash_seed: str) -> None:
    # A different PYTHONHASHSEED changes str hashes: this fails if hash() were used anywhere.
    code = (
        "import json, sys\n"
        "from grpc_server.providers.hashing_embeddings import embed_text, embed_tokens\n"
        "print(json.dumps([embed_text(sys.argv[1], 97), embed_tokens([3, 1, 4, 1, 5], 97)]))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", code, SAMPLE], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    text_vector, token_vector = json.loads(result.stdout)
    assert text_vector == embed_text(SAMPLE, 97)
    assert token_vector == embed_tokens([3, 1, 4, 1, 5], 97)


def test_dimensions_change_the_vector() -> None:
    assert len(embed_text("hello world", 3)) == 3
    assert embed_text("hello world", 128) != embed_text("hello world", 256)[:128]


@pytest.mark.parametrize("dimensions", [0, -1, MAX_DIMENSIONS + 1, 10**9])
def test_dimensions_out_of_range_are_refused(dimensions: int) -> None:
    with pytest.raises(ValueError, match="dimensions"):
        embed_text("hello", dimensions)
    with pytest.raises(ValueError, match="dimensions"):
        embed_tokens([1, 2], dimensions)


@pytest.mark.parametrize("dimensions", [True, 2.0, "8"])
def test_non_integer_dimensions_are_refused(dimensions: object) -> None:
    with pytest.raises(ValueError, match="dimensions"):
        embed_text("hello", dimensions)  # type: ignore[arg-type]


# (anchor, closer, farther): a user would expect cos(anchor, closer) > cos(anchor, farther).
SIMILARITY_ORDER = [
    ("the cat sat on the mat", "a cat sat on a mat", "quarterly revenue grew by ten percent"),
    ("Running quickly", "run quick", "banana bread recipe"),
    ("reset my password", "how do I reset a forgotten password", "weather forecast for tomorrow"),
    ("the cat sat on the mat", "the mat sat on the cat", "dogs chase cars"),
]


@pytest.mark.parametrize(("anchor", "closer", "farther"), SIMILARITY_ORDER)
@pytest.mark.parametrize("dimensions", [64, DEFAULT_DIMENSIONS, 1024])
def test_similarity_order(anchor: str, closer: str, farther: str, dimensions: int) -> None:
    near = _text_cos(anchor, closer, dimensions)
    far = _text_cos(anchor, farther, dimensions)
    assert near > far + 0.1, (near, far)


# Pairs that differ only in case, spacing, punctuation or Unicode form: near-identical vectors.
EQUIVALENT = [
    ("Hello, World!", "hello world"),
    ("  HELLO\t\nworld  ", "hello world"),
    ("ﬁne café", "fine café"),  # NFKC folds the ligature and composes the accent
    ("under_score", "under score"),
]


@pytest.mark.parametrize(("a", "b"), EQUIVALENT)
def test_case_spacing_and_punctuation_do_not_matter(a: str, b: str) -> None:
    assert _text_cos(a, b) > 0.95


def test_unrelated_texts_are_near_orthogonal() -> None:
    assert abs(_text_cos("banana bread recipe", "quarterly revenue grew by ten percent", 1024)) < 0.2


def test_identical_token_lists_have_similarity_one() -> None:
    tokens = [101, 2023, 2003, 1037, 3231, 102]
    assert cosine(embed_tokens(tokens), embed_tokens(list(tokens))) == pytest.approx(1.0, abs=1e-12)


def test_shared_token_prefix_beats_disjoint_tokens() -> None:
    base = [101, 2023, 2003, 1037, 3231, 102]
    shared_prefix = [101, 2023, 2003, 9999, 8888, 7777]
    disjoint = [5, 6, 7, 8, 9, 10]
    near = cosine(embed_tokens(base), embed_tokens(shared_prefix))
    far = cosine(embed_tokens(base), embed_tokens(disjoint))
    assert near > far + 0.2, (near, far)


def test_token_order_matters_a_little() -> None:
    forward = embed_tokens([1, 2, 3, 4])
    assert 0.5 < cosine(forward, embed_tokens([4, 3, 2, 1])) < 1.0


@pytest.mark.parametrize(
    ("text", "count"),
    [("", 0), ("hello", 1), ("Hello, World!", 2), ("it's 42 o'clock", 5), ("  a  b  ", 2), ("snake_case", 2)],
)
def test_count_tokens_counts_words(text: str, count: int) -> None:
    assert count_tokens(text) == count
