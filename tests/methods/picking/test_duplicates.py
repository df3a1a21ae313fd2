"""remove_duplicates against a brute-force greedy reference on random points."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import pdist, squareform

from tomoforge.methods.picking.duplicates import remove_duplicates


def greedy_reference(points: np.ndarray, scores: np.ndarray, distance: float) -> np.ndarray:
    """The rule written out: best remaining pick kept, every pick within the distance of it dropped."""
    d = squareform(pdist(points))
    order = np.lexsort((np.arange(len(points)), np.where(np.isnan(scores), np.inf, -scores)))
    alive = np.ones(len(points), bool)
    kept = np.zeros(len(points), bool)
    for i in order:
        if alive[i]:
            kept[i] = True
            alive &= d[i] > distance
    return kept


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_kept_set_is_the_greedy_one_and_no_pair_is_closer_than_the_distance(seed):
    rng = np.random.default_rng(seed)
    points = rng.uniform(0, 400, (600, 3))
    scores = rng.random(600)
    scores[rng.choice(600, 30, replace=False)] = np.nan  # missing scores rank last
    keep = remove_duplicates(points, 35.0, scores=scores)
    assert np.array_equal(keep, greedy_reference(points, scores, 35.0))
    assert pdist(points[keep]).min() > 35.0
    assert 0 < keep.sum() < 600


def test_a_cluster_keeps_its_best_score_and_tomograms_do_not_interact():
    centre = np.array([100.0, 200.0, 50.0])
    points = np.concatenate([centre + [[0, 0, 0], [5, 0, 0], [0, 8, 0]], centre + [[0, 0, 0], [3, 3, 3]]])
    scores = np.array([0.2, 0.9, 0.5, 0.1, 0.3])
    groups = np.array(["TS_01"] * 3 + ["TS_02"] * 2)
    keep = remove_duplicates(points, 10.0, scores=scores, groups=groups)
    assert keep.tolist() == [False, True, False, False, True]
    assert remove_duplicates(points, 10.0).tolist() == [True, False, False, False, False]  # no scores: the first


def test_a_chain_is_resolved_as_the_greedy_rule_says():
    """a–b–c in a row 8 Å apart, b best: only b survives; a best: a and c survive."""
    points = np.array([[0.0, 0, 0], [8, 0, 0], [16, 0, 0]])
    assert remove_duplicates(points, 10.0, scores=np.array([0.1, 0.9, 0.2])).tolist() == [False, True, False]
    assert remove_duplicates(points, 10.0, scores=np.array([0.9, 0.5, 0.2])).tolist() == [True, False, True]
