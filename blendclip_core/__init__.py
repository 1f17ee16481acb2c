"""BlendCLIP core: point encoder, CLIP spaces, zero-shot labelling, data, training and evaluation.

Pure library: no ROS imports anywhere below this package (tests enforce it).
"""

__version__ = '0.1.0'
