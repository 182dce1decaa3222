"""From raw columns to codes: the field encoder (vocabularies, bins,
hashing) and cross-fitted target statistics. numpy, pandas, scikit-learn.

Internal: use the names ``sk_fibinet`` exports."""
