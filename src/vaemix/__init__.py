"""vaemix: deep mixture models (VAE-based clustering) compared as a reproducible DVC pipeline."""

__version__ = "0.1.0"
