"""Evaluation: zero-shot metrics (top-k overall and per class, confusion), protocols and plots."""
