"""Triplet records, shard storage, datasets and the curriculum batch composer."""
