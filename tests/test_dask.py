"""dask-ml on a real (loopback) distributed cluster: Incremental and ParallelPostFit.

dask-ml's ``Incremental`` calls ``partial_fit`` once per block, in turn, on the
workers, shipping the estimator (pickled) from one task to the next; a dask
DataFrame hands over pandas DataFrames and Series, a dask array NumPy blocks.
"""

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from conftest import FAST, make_mixed
from dask_ml.wrappers import Incremental, ParallelPostFit
from distributed import Client, LocalCluster
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.metrics import roc_auc_score

from sk_fibinet import FiBiNETClassifier

N_PARTITIONS = 20


@pytest.fixture(scope="module")
def client():
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def trained(client):
    X, y = make_mixed(n=3000)
    X_dask = dd.from_pandas(X, npartitions=N_PARTITIONS)
    y_dask = dd.from_pandas(pd.Series(y, name="y"), npartitions=N_PARTITIONS)
    assert X_dask.npartitions == N_PARTITIONS
    assert X_dask.divisions == y_dask.divisions
    model = Incremental(FiBiNETClassifier(**FAST, hash_buckets=64), random_state=0)
    model.fit(X_dask, y_dask, classes=[0, 1])
    return model.estimator_


def test_incremental_trains_on_the_partitions_of_a_dask_dataframe(trained):
    assert trained.n_iter_ == N_PARTITIONS  # one partial_fit per partition
    assert_array_equal(trained.feature_names_in_, make_mixed(n=5)[0].columns)
    X_test, y_test = make_mixed(n=1000, seed=1)
    assert roc_auc_score(y_test, trained.predict_proba(X_test)[:, 1]) > 0.8


def test_parallel_post_fit_predicts_like_the_in_memory_model(trained, client):
    X_test, _ = make_mixed(n=1000, seed=1)
    X_test.loc[:4, "color"] = ["magenta", None, "teal", "red", "ochre"]
    X_dask = dd.from_pandas(X_test, npartitions=5)
    proba = ParallelPostFit(trained).predict_proba(X_dask).compute()
    assert_allclose(proba, trained.predict_proba(X_test), rtol=1e-6, atol=1e-9)


def test_incremental_on_a_dask_array_passes_numpy_blocks(client):
    X, y = make_mixed(n=800)
    X_array = da.from_array(X[["amount", "noise"]].to_numpy(), chunks=(100, 2))
    y_array = da.from_array(y, chunks=100)
    model = Incremental(FiBiNETClassifier(**FAST), random_state=0)
    model.fit(X_array, y_array, classes=np.array([0, 1]))
    assert model.estimator_.n_iter_ == 8
    assert not hasattr(model.estimator_, "feature_names_in_")
    proba = ParallelPostFit(model.estimator_).predict_proba(X_array).compute()
    assert_allclose(proba, model.estimator_.predict_proba(X_array.compute()))


def test_partial_fit_refuses_a_whole_dask_collection():
    X, y = make_mixed(n=100)
    X_dask = dd.from_pandas(X, npartitions=2)
    with pytest.raises(TypeError, match="dask_ml.wrappers.Incremental"):
        FiBiNETClassifier(**FAST).partial_fit(X_dask, y, classes=[0, 1])
