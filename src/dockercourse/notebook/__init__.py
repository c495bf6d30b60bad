"""The side of the course a notebook touches: ``setup()`` and the ``Course`` it returns."""
