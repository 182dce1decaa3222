"""The scikit-learn estimators: parameters, validation, task hooks,
predict.

Internal: use the names ``sk_fibinet`` exports."""
