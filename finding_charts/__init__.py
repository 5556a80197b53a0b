"""One-page PDF finding charts (reportlab), like ALeRCE's (paper Fig. 13)."""
