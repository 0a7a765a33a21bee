"""Structured pruning: remove channels physically, rebuild the smaller model from plain data,
export it in forms that load elsewhere, and 2:4 semi-structured sparsity on capable GPUs."""
