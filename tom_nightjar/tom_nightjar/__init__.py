"""Nightjar for the TOM Toolkit: a data service, a broker class and a live stream of a
saved filter's matches (``manage.py nightjar_stream``)."""

__version__ = "0.1.0"
