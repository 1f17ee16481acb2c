"""Bag tools: nuScenes/TruckScenes -> rosbag2 (nuscenes2bag), replay into a live graph (replay), the
node's pipeline over a bag without a graph (label_bag), and reading labelled bags for evaluation
(labelled). Writing and reading use rosbags only; replay and label_bag use rclpy. See docs/bags.md."""
