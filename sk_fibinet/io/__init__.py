"""Model files (save_model / load_model) and the ONNX export: above the
estimators they read and write (the plain-value helpers they share with
checkpoints are the leaf ``sk_fibinet._serialization``).

Internal: use the names ``sk_fibinet`` exports."""
