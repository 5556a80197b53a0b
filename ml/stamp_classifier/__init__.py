"""The stamp classifier: AGN, SN, VS, asteroid or bogus from an object's first alert.

After Carrasco-Davis et al. 2021 (AJ 162, 231) and the ALeRCE paper §3.1: the three
cutouts (science, template, difference) seen in their four rotations by one small CNN,
the features pooled across rotations, the alert's metadata concatenated after the
convolutional part, a 5-class softmax.  Trained with torch (:mod:`.train`, the ``train``
dependency group), served with ONNX Runtime (:mod:`.runtime`), which is all the live
pipeline needs.
"""

#: the ZTF model's registry name, and the classifier name of every survey's probability
#: rows (one API for both surveys; the object's survey says which model wrote them)
NAME = "stamp_classifier"
LSST_NAME = "lsst_stamp_classifier"  #: the Rubin model's registry name (:mod:`.lsst`)
CLASSES: tuple[str, ...] = ("AGN", "SN", "VS", "asteroid", "bogus")
