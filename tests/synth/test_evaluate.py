"""Quality measures of synthetic tables: fidelity, utility, privacy and their references."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as csv
import pytest
from scipy.stats.contingency import association

from cardiobox.synth.domain import Domain, DomainError
from cardiobox.synth.encode import encode
from cardiobox.synth.evaluate import (
    EvaluationError,
    cramers_v,
    evaluate,
    exact_copy_share,
    hamming_dcr,
    independent_sample,
    privacy,
    split_holdout,
    tvd_1way,
    tvd_2way,
    utility,
)
from cardiobox.synth.templates import template

ROOT = Path(__file__).resolve().parents[2]
HEART_FAILURE = (
    ROOT / "data" / "heart_failure_clinical_records" / "heart_failure_clinical_records_dataset.csv"
)


def categorical_domain(columns: int, levels: int) -> Domain:
    return Domain.model_validate(
        {
            "name": "toy",
            "columns": [
                {"name": f"c{j}", "kind": "categorical", "categories": list(range(levels))}
                for j in range(columns)
            ],
        }
    )


def population(n: int, rng: np.random.Generator, columns: int = 8, levels: int = 6) -> pa.Table:
    """Rows of a distribution with related columns: each column is a noisy copy of a latent."""
    latent = rng.integers(levels, size=n)
    noise = rng.integers(levels, size=(n, columns))
    keep = rng.random((n, columns)) < 0.6
    values = np.where(keep, latent[:, None], noise)
    return pa.table({f"c{j}": values[:, j] for j in range(columns)})


# -- fidelity ---------------------------------------------------------------------------------


def test_tvd_by_hand() -> None:
    a = np.array([[0, 0], [0, 1], [1, 1], [1, 1]])
    b = np.array([[0, 0], [1, 0]])  # two rows: shares of 1/2
    # column 0: (1/2, 1/2) vs (1/2, 1/2) -> 0; column 1: (1/4, 3/4) vs (1, 0) -> 3/4
    assert tvd_1way(a, b, [2, 2]) == pytest.approx([0.0, 0.75])
    # cells 00 01 10 11: (1/4, 1/4, 0, 1/2) vs (1/2, 0, 1/2, 0) -> (1/4+1/4+1/2+1/2)/2
    m = tvd_2way(a, b, [2, 2])
    assert m[0, 1] == pytest.approx(0.75) and m[1, 0] == pytest.approx(0.75)
    assert np.isnan(m[0, 0]) and np.isnan(m[1, 1])
    # a code never seen in either table changes nothing
    assert tvd_1way(a, b, [3, 2]) == pytest.approx([0.0, 0.75])


def test_identical_tables_are_at_distance_zero() -> None:
    d = categorical_domain(4, 3)
    t = population(300, np.random.default_rng(0), columns=4, levels=3)
    e = evaluate(t, t, t, d)
    f = e.fidelity
    assert all(v.synthetic == 0.0 and v.noise_floor == 0.0 for v in f.one_way.values())
    assert f.two_way_mean.synthetic == 0.0 and f.two_way_max.synthetic == 0.0
    assert f.association_mean.synthetic == 0.0
    assert len(f.pairs) == 6  # every pair of 4 columns
    assert e.privacy.exact_copy_share == 1.0 and e.privacy.median_synthetic == 0.0


def test_cramers_v_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    for shape in [(2, 2), (3, 5), (6, 4)]:
        table = rng.integers(1, 40, size=shape)
        assert cramers_v(table) == pytest.approx(association(table, method="cramer"))
    # empty rows and columns are left out; a constant column has no association
    table = np.array([[10, 0, 5], [0, 0, 0], [3, 0, 9]])
    assert cramers_v(table) == pytest.approx(association(table[[0, 2]][:, [0, 2]], method="cramer"))
    assert cramers_v(np.array([[4, 7, 0]])) == 0.0
    assert cramers_v(np.eye(3) * 10) == pytest.approx(1.0)


def test_independent_baseline_keeps_marginals_and_loses_relations() -> None:
    d = categorical_domain(3, 4)
    t = encode(population(4000, np.random.default_rng(1), columns=3, levels=4), d).codes
    ind = independent_sample(t, d.sizes(), 4000, np.random.default_rng(2))
    assert tvd_1way(t, ind, d.sizes()).max() < 0.04
    shares = np.zeros((6, 6))
    np.add.at(shares, (ind[:, 0], ind[:, 1]), 1)
    assert cramers_v(shares) < 0.06
    np.add.at(shares := np.zeros((6, 6)), (t[:, 0], t[:, 1]), 1)
    assert cramers_v(shares) > 0.3  # the real columns are related


def test_references_are_computed_on_real_train_and_holdout() -> None:
    d = categorical_domain(5, 4)
    rng = np.random.default_rng(5)
    train, holdout, synthetic = (population(n, rng, 5, 4) for n in (600, 300, 600))
    e = evaluate(train, synthetic, holdout, d, seed=7)
    tr, ho, sy = (encode(t, d).codes for t in (train, holdout, synthetic))
    floor1, syn1 = tvd_1way(tr, ho, d.sizes()), tvd_1way(tr, sy, d.sizes())
    for j, name in enumerate(d.names):
        assert e.fidelity.one_way[name].noise_floor == pytest.approx(floor1[j])
        assert e.fidelity.one_way[name].synthetic == pytest.approx(syn1[j])
    floor2 = tvd_2way(tr, ho, d.sizes())
    assert e.fidelity.two_way_mean.noise_floor == pytest.approx(
        floor2[np.triu_indices(5, 1)].mean()
    )
    worst = e.fidelity.pairs[0]
    i, j = (d.position(c) for c in worst.columns)
    assert worst.tvd.synthetic == pytest.approx(tvd_2way(tr, sy, d.sizes())[i, j])
    assert worst.tvd.synthetic == e.fidelity.two_way_max.synthetic
    # the independent baseline is far off in two ways
    independent, floor = e.fidelity.two_way_mean.independent, e.fidelity.two_way_mean.noise_floor
    assert independent is not None and floor is not None and independent > 2 * floor
    assert e.rows == {"train": 600, "synthetic": 600, "holdout": 300, "independent": 600}
    # the same seed gives the same report
    assert evaluate(train, synthetic, holdout, d, seed=7).to_dict() == e.to_dict()


# -- privacy ----------------------------------------------------------------------------------


def test_hamming_dcr_matches_brute_force() -> None:
    rng = np.random.default_rng(8)
    sizes = [3, 5, 2, 7]
    q = np.column_stack([rng.integers(s, size=50) for s in sizes])
    r = np.column_stack([rng.integers(s, size=5000) for s in sizes])  # more than one chunk
    brute = (q[:, None, :] != r[None, :, :]).sum(axis=2).min(axis=1)
    assert hamming_dcr(q, r, sizes).tolist() == brute.tolist()
    assert hamming_dcr(r[:7], r, sizes).tolist() == [0] * 7


def test_exact_copy_share_by_hand() -> None:
    r = np.array([[0, 1], [1, 1], [2, 0]])
    q = np.array([[1, 1], [1, 0], [2, 0], [0, 0]])
    assert exact_copy_share(q, r, [3, 2]) == 0.5


def test_attack_catches_a_copy_and_not_an_independent_sample() -> None:
    d = categorical_domain(8, 6)
    rng = np.random.default_rng(11)
    train, holdout, fresh = (population(1500, rng) for _ in range(3))
    sizes = d.sizes()
    tr, ho, fr = (encode(t, d).codes for t in (train, holdout, fresh))
    independent = privacy(tr, fr, ho, sizes, rows=1500, seed=0)
    assert independent.mia_auroc == pytest.approx(0.5, abs=0.05)
    assert independent.exact_copy_share == pytest.approx(
        independent.exact_copy_share_holdout, abs=0.03
    )
    copied = privacy(tr, tr, ho, sizes, rows=1500, seed=0)
    # members all at distance 0; holdout rows at 0 tie with them (half credit), the rest lose
    assert copied.mia_auroc == pytest.approx(1 - copied.exact_copy_share_holdout / 2)
    assert copied.mia_auroc > 0.9
    assert copied.exact_copy_share == 1.0 and copied.closer_than_holdout_median == 1.0
    assert copied.dcr_synthetic[0] == 1500 and sum(copied.dcr_holdout) == 1500
    assert copied.closer_than_holdout_median_holdout < 0.5
    # a half copy sits in between
    half = privacy(tr, np.vstack([tr[:750], fr[:750]]), ho, sizes, rows=1500, seed=0)
    assert 0.6 < half.mia_auroc < copied.mia_auroc
    # the copied half, plus the fresh half's chance matches
    assert half.exact_copy_share == pytest.approx(
        0.5 + 0.5 * independent.exact_copy_share, abs=0.03
    )


def test_privacy_samples_queries_but_counts_copies_on_all_rows() -> None:
    d = categorical_domain(8, 6)
    rng = np.random.default_rng(12)
    tr, ho = (encode(population(n, rng), d).codes for n in (900, 700))
    p = privacy(tr, tr, ho, d.sizes(), rows=200, seed=1)
    assert p.sampled_rows == {"synthetic": 200, "holdout": 200, "train": 200}
    assert sum(p.dcr_synthetic) == 200 and p.mia_members == 200 and p.mia_non_members == 200
    assert p.exact_copy_share == 1.0
    with pytest.raises(EvaluationError, match="rows must be a positive integer"):
        privacy(tr, tr, ho, d.sizes(), rows=0)


# -- utility ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def heart_failure() -> tuple[Domain, pa.Table, pa.Table]:
    d = template("heart_failure_records")
    table = csv.read_csv(HEART_FAILURE).select(d.names)
    train, holdout = split_holdout(table, 0.3, seed=0)
    return d, train, holdout


def test_utility_of_a_resample_is_that_of_the_real_table(
    heart_failure: tuple[Domain, pa.Table, pa.Table],
) -> None:
    d, train, holdout = heart_failure
    resample = train.take(np.random.default_rng(100).integers(train.num_rows, size=train.num_rows))
    e = evaluate(
        train,
        resample,
        holdout,
        d,
        outcome="DEATH_EVENT",
        guarantee={"mechanism": "none", "epsilon": None},
    )
    u = e.utility
    assert u is not None and u.positive == "true"
    assert u.test_rows == holdout.num_rows
    assert u.test_positives == int(np.sum(holdout.column("DEATH_EVENT").to_numpy()))
    assert [m.model for m in u.models] == ["logistic_regression", "gradient_boosting"]
    for m in u.models:
        assert m.tstr is not None and m.trtr is not None and m.independent is not None
        # 'time' (follow-up, the duration of DEATH_EVENT) carries the outcome: left out
        assert m.trtr > 0.7
        assert m.tstr == pytest.approx(m.trtr, abs=0.1)
        assert m.ratio is not None and m.ratio > 0.9
        assert m.independent < m.trtr - 0.1  # no relations, little to learn
        assert m.roc_tstr[0]["fpr"] == 0.0 and m.roc_tstr[-1]["tpr"] == 1.0
    # a resample copies training rows: the attack sees it
    assert e.privacy.mia_auroc > 0.7 and e.privacy.exact_copy_share == 1.0
    assert e.guarantee == {"mechanism": "none", "epsilon": None}
    doc = orjson.loads(orjson.dumps(e.to_dict()))
    assert doc["utility"]["models"][1]["tstr"] == pytest.approx(u.models[1].tstr)
    assert doc["fidelity"]["one_way"]["age"]["noise_floor"] > 0


def test_outcome_must_be_binary_or_name_its_positive_value(
    heart_failure: tuple[Domain, pa.Table, pa.Table],
) -> None:
    d, train, holdout = heart_failure
    tr, ho = encode(train, d).codes, encode(holdout, d).codes
    with pytest.raises(EvaluationError, match=r"outcome 'serum_sodium' has 12 values.*positive="):
        utility(tr, tr, ho, d, "serum_sodium")
    with pytest.raises(EvaluationError, match="positive 'yes' is not a value of outcome 'sex'"):
        utility(tr, tr, ho, d, "sex", positive="yes")
    with pytest.raises(DomainError, match="'nope' is not in domain"):
        evaluate(train, train, holdout, d, outcome="nope")
    u = utility(tr, tr, ho, d, "sex", positive="0")
    assert u.positive == "0" and u.test_positives == int(np.sum(ho[:, d.position("sex")] == 0))


def test_one_class_training_table_gives_no_model_and_says_why(
    heart_failure: tuple[Domain, pa.Table, pa.Table],
) -> None:
    d, train, holdout = heart_failure
    tr, ho = encode(train, d).codes, encode(holdout, d).codes
    j = d.position("DEATH_EVENT")
    survivors = tr[tr[:, j] == 0]
    u = utility(tr, survivors, ho, d, "DEATH_EVENT")
    for m in u.models:
        assert m.tstr is None and m.ratio is None and m.trtr is not None
        assert m.notes == ["the synthetic table holds one outcome class only: no model"]


def test_rows_without_an_outcome_are_left_out_and_counted() -> None:
    d = Domain.model_validate(
        {
            "name": "t",
            "columns": [
                {"name": "x", "kind": "categorical", "categories": [0, 1, 2]},
                {"name": "y", "kind": "boolean"},
            ],
        }
    )
    rng = np.random.default_rng(4)
    x = rng.integers(3, size=400)
    y = (rng.random(400) < 0.2 + 0.3 * x).astype(float)
    y[:10] = np.nan  # missing outcomes
    t = pa.table({"x": x, "y": pa.array(y, from_pandas=True)})
    u = utility(encode(t, d).codes, encode(t, d).codes, encode(t, d).codes, d, "y")
    assert u.dropped == {"train": 10, "synthetic": 10, "holdout": 10}
    assert u.test_rows == 390


# -- input ------------------------------------------------------------------------------------


def test_bad_tables_are_refused() -> None:
    d = categorical_domain(2, 3)
    t = pa.table({"c0": [0, 1, 2], "c1": [1, 1, 0]})
    with pytest.raises(EvaluationError, match="the synthetic table has no rows"):
        evaluate(t, t.slice(0, 0), t, d)
    with pytest.raises(DomainError, match="domain columns not in the table"):
        evaluate(t, t.select(["c0"]), t, d)
    with pytest.raises(EvaluationError, match="code 3 of column 1"):
        tvd_1way(np.array([[0, 3]]), np.array([[0, 0]]), [3, 3])
    with pytest.raises(EvaluationError, match=r"must be a \(rows, 2\) code matrix"):
        tvd_2way(np.array([0, 1]), np.array([[0, 0]]), [3, 3])


def test_out_of_range_values_are_reported() -> None:
    d = categorical_domain(2, 3)
    t = pa.table({"c0": [0, 1, 2, 1], "c1": [1, 1, 0, 2]})
    bad = pa.table({"c0": [0, 9, 9, 1], "c1": [1, 1, 0, 2]})
    e = evaluate(t, bad, t, d)
    assert e.out_of_range == {"train": {}, "synthetic": {"c0": 2}, "holdout": {}}
    assert e.fidelity.one_way["c0"].synthetic == pytest.approx(0.5)


def test_split_holdout() -> None:
    t = pa.table({"i": np.arange(100)})
    train, holdout = split_holdout(t, 0.25, seed=3)
    assert (train.num_rows, holdout.num_rows) == (75, 25)
    ids = train.column("i").to_pylist() + holdout.column("i").to_pylist()
    assert sorted(ids) == list(range(100))
    assert split_holdout(t, 0.25, seed=3)[1].equals(holdout)
    with pytest.raises(EvaluationError, match="fraction must lie in"):
        split_holdout(t, 1.0)
    with pytest.raises(EvaluationError, match="leaves a part empty"):
        split_holdout(t.slice(0, 1), 0.5)
