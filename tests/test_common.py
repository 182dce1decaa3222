"""scikit-learn's own estimator checks on a small, fast configuration."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sk_fibinet import FiBiNETClassifier, FiBiNETRegressor

SMALL = dict(
    embedding_dim=4,
    hidden_layer_sizes=(16,),
    batch_size=32,
    max_epochs=15,
    learning_rate=1e-2,
    dropout=0.0,
    random_state=0,
)

EXPECTED_FAILED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data": (
        "mini-batch training: a row with weight 2 and two copies of it land in "
        "different batches, so the fits are equivalent in expectation only"
    ),
}


@parametrize_with_checks(
    [FiBiNETClassifier(**SMALL), FiBiNETRegressor(**SMALL)],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
