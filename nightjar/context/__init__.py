"""Context for objects: catalogues (cone search, cross-match) and the Transient Name Server.

Constants the API layer needs are here, so it can name them without importing the
catalogue and TNS machinery (pyarrow, httpx) it does not use.
"""

#: radius within which a TNS object is an object's name [arcsec]
MATCH_RADIUS_ARCSEC = 2.0
