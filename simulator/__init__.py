"""Taobao-style feedback log simulator with ground truth (no TensorFlow needed)."""
