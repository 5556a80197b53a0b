"""surveys/ztf"""
