"""CLIP-RT core library: model, actions, data, training, inference, simulation, evaluation (no ROS)."""
