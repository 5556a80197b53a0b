"""The anomaly score: isolation forests per class, weighted by the light-curve classifier
(:mod:`ml.anomaly.model`), grown by :mod:`ml.anomaly.train`, evaluated by
:mod:`ml.anomaly.evaluate`."""

#: the registered ZTF anomaly model
NAME = "ztf_anomaly"
#: the registered LSST anomaly model (grown on simulations: ml/anomaly/lsst.py)
LSST_ANOMALY = "lsst_anomaly"
