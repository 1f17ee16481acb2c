"""Driving-object generator: parametric meshes (dense 'synthetic CAD' domain) and a simulated spinning
LiDAR (sparse 'real-like' domain), captions from templates, and Triplet sources for the trainer.

Submodules that need trimesh (shapes, parts, lidar) are imported lazily, so that loading a generated
set from .npz (dataset.load_npz) needs only numpy.
"""
