"""Test helpers shared across test areas (generators of small real-format data)."""
