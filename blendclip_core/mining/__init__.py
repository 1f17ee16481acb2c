"""Triplet mining: driving datasets (nuScenes, TruckScenes) and CAD sources -> Triplets and shards.

Real side: `nuscenes.py` / `truckscenes.py` read a sample into a `objects.Frame`, `objects.mine_frame`
turns it into Triplets, `run.py` drives whole runs (parallel, resumable) into shards (data/shards.py).
Synthetic side: `cad.py` reads ULIP-2 / OpenShape-style triplet folders and samples meshes.
"""
