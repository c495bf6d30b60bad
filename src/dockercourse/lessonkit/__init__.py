"""Helpers the chapters use to draw and probe what the engine does (pictures, layers, mounts, ...)."""
