"""ROS 2 nodes and message conversions for the CLIP-RT policy (thin layer over cliprt_core)."""
