"""nightjar-client: the Python client of the Nightjar alert broker.

>>> from nightjar_client import Nightjar
>>> nj = Nightjar("http://127.0.0.1:8000")          # or $NIGHTJAR_URL
>>> nj.query_objects(classifier="stamp_classifier", class_name="SN", probability=0.5)

The methods carry the names of ALeRCE's client (``query_objects``, ``query_lightcurve``,
``get_stamps``, ``catshtm_conesearch``...).  The typed layer under them is generated
from the gateway's schema (``nightjar_client.generated``, ariadne-codegen).
"""

from importlib.metadata import version

from nightjar_client.core import LiveAlert, LiveClassification, Nightjar
from nightjar_client.errors import APIError, ObjectNotFoundError, ParseError
from nightjar_client.transport import RetryPolicy

__version__ = version("nightjar-client")
__all__ = ["APIError", "LiveAlert", "LiveClassification", "Nightjar", "ObjectNotFoundError",
           "ParseError", "RetryPolicy", "__version__"]
