"""CLIP-RT core library (no ROS): model, actions, data, training, inference, sim, evaluation."""
