"""BlendCLIP ROS 2 glue: message conversions, the labelling node and the bag tools.

Imports blendclip_core, never the reverse. Importing this package (or `blendclip_ros.conversions`)
needs neither rclpy.init nor a ROS graph; message modules are imported only where messages are built.
"""

__version__ = '0.1.0'
