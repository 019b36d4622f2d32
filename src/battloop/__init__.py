"""battloop: the closed loop for telecom lithium backup batteries."""

__version__ = "0.1.0"
