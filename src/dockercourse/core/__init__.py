"""The core: finding the engine, the run namespace and its labels, cleanup, the pinned images."""
