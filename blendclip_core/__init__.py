"""BlendCLIP core: point encoder, CLIP spaces, zero-shot labelling, data, training and evaluation.

Pure library: no ROS imports anywhere below this package (tests enforce it).
`blendclip_core.predict(points, vocabulary=...)`: labels for objects' xyz points in one call.
"""

from blendclip_core.predict import predict

__version__ = '0.1.0'
__all__ = ['predict']
