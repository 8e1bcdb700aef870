"""cardiobox: an open toolbox for multi-site cardiology research."""

__version__ = "0.1.0"
