"""Nightjar: an astronomical alert broker (ZTF today, LSST tomorrow)."""

__version__ = "0.1.0"
