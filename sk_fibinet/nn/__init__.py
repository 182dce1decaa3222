"""The torch network: embeddings, SENET, bilinear interactions, FiBiNET and
FiBiNet++, the optimizer. Knows torch only; nothing here reads data or trains.

Internal: use the names ``sk_fibinet`` exports."""
