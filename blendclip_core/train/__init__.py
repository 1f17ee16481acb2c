"""Training: curriculum batch composer, losses, optimizer groups, the step and the loop.

`training/train.py` (blendclip-train) is a thin shell over `blendclip_core.train.loop.Trainer`.
"""
