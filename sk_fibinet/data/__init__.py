"""Data sources the training engine reads: rows in memory, one chunk, a
Parquet stream; what each answers the engine (statistics, batches, held-out
rows, a fingerprint).

Internal: use the names ``sk_fibinet`` exports."""
