"""The examples' data: the toy set, two moons, the wheat seeds CSV, normalisation and folds."""
import math
import pathlib
import random

import pytest
from hypothesis import given, strategies as st

from micrograd.datasets import (TOY_DATASET, cross_validation_split, load_classification_csv,
                                make_moons, minmax_normalise)

WHEAT = pathlib.Path(__file__).parent.parent / 'examples' / 'data' / 'wheat-seeds.csv'


def test_the_toy_set_has_ten_rows_five_per_class():
    assert len(TOY_DATASET) == 10
    assert [row[2] for row in TOY_DATASET] == [0] * 5 + [1] * 5
    assert TOY_DATASET[0] == (2.7810836, 2.550537003, 0)


def test_noiseless_moons_lie_on_two_half_circles():
    X, y = make_moons(n_samples=20, noise=0.0, rng=random.Random(0))
    assert sorted(y) == [0] * 10 + [1] * 10
    for (x1, x2), label in zip(X, y):
        if label == 0:  # the upper half circle around (0, 0)
            assert math.isclose(math.hypot(x1, x2), 1.0) and x2 >= -1e-12
        else:           # the lower half circle around (1, 0.5)
            assert math.isclose(math.hypot(x1 - 1.0, x2 - 0.5), 1.0) and x2 <= 0.5 + 1e-12


@given(n=st.integers(2, 60), seed=st.integers(0, 100))
def test_moons_are_reproducible_from_the_rng_and_sized_as_asked(n, seed):
    X, y = make_moons(n_samples=n, noise=0.1, rng=random.Random(seed))
    assert (X, y) == make_moons(n_samples=n, noise=0.1, rng=random.Random(seed))
    assert len(X) == len(y) == n
    assert y.count(0) == n // 2


def test_moons_refuse_a_bad_size():
    with pytest.raises(ValueError, match='n_samples'):
        make_moons(n_samples=1)


def test_wheat_seeds_has_210_rows_7_features_and_3_balanced_classes():
    rows = load_classification_csv(WHEAT)
    assert len(rows) == 210
    assert all(len(row) == 8 for row in rows)
    assert [sum(row[-1] == c for row in rows) for c in range(3)] == [70, 70, 70]
    assert rows[0][:2] == [15.26, 14.84]


def test_classes_are_numbered_in_sorted_order(tmp_path):
    path = tmp_path / 'd.csv'
    path.write_text('1.0,b\n2.0,a\n3.0,c\n')
    assert load_classification_csv(path) == [[1.0, 1], [2.0, 0], [3.0, 2]]


def test_a_non_numeric_feature_is_reported(tmp_path):
    path = tmp_path / 'd.csv'
    path.write_text('1.0,a\nx,b\n')
    with pytest.raises(ValueError, match='d.csv: a feature is not a number'):
        load_classification_csv(path)


def test_minmax_maps_each_feature_to_0_1_and_keeps_the_class():
    rows = minmax_normalise([[1.0, 10.0, 0], [3.0, 30.0, 1], [2.0, 20.0, 2]])
    assert rows == [[0.0, 0.0, 0], [1.0, 1.0, 1], [0.5, 0.5, 2]]


def tutorial_cross_validation_split(dataset, n_folds):
    """The classic tutorial's function, verbatim but for its global randrange."""
    from random import randrange
    dataset_split = list()
    dataset_copy = list(dataset)
    fold_size = int(len(dataset) / n_folds)
    for _ in range(n_folds):
        fold = list()
        while len(fold) < fold_size:
            index = randrange(len(dataset_copy))
            fold.append(dataset_copy.pop(index))
        dataset_split.append(fold)
    return dataset_split


@given(n=st.integers(5, 50), folds=st.integers(2, 5), seed=st.integers(0, 1000))
def test_folds_are_the_tutorials(n, folds, seed):
    rows = list(range(n))
    random.seed(seed)
    expected = tutorial_cross_validation_split(rows, folds)
    random.seed(seed)
    assert cross_validation_split(rows, folds) == expected


def test_too_few_rows_for_the_folds():
    with pytest.raises(ValueError, match='cannot split 3 rows into 5 folds'):
        cross_validation_split([1, 2, 3], 5)
