"""Tracking: MLflow runs (one store, batched logging) and queries over them."""
