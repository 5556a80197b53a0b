"""A minimal TOM with the Nightjar broker: the TOM Toolkit's defaults, SQLite, and the
broker's settings from the environment (``NIGHTJAR_URL``, ``NIGHTJAR_API_KEY``).

Its database and cache live under ``NIGHTJAR_TOM_HOME`` (default: beside this file), so
tests can run it in a scratch directory.
"""

import os
from pathlib import Path

from tom_common.default_settings import *  # noqa: F403  (the toolkit's own defaults)
from tom_common.default_settings import (
    TOMTOOLKIT_AUTHENTICATION_BACKENDS,
    TOMTOOLKIT_INSTALLED_APPS,
    TOMTOOLKIT_MIDDLEWARE,
)

BASE_DIR = Path(__file__).resolve().parent.parent
HOME = Path(os.environ.get("NIGHTJAR_TOM_HOME", BASE_DIR))

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-tom-not-for-production")
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
TOM_NAME = "Example TOM"

# tom_alerts (the toolkit's older broker app) beside its data services, to show both
INSTALLED_APPS = [*TOMTOOLKIT_INSTALLED_APPS, "tom_alerts", "tom_nightjar"]
SITE_ID = 1
MIDDLEWARE = TOMTOOLKIT_MIDDLEWARE
ROOT_URLCONF = "example_tom.urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [],
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.debug",
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
CRISPY_TEMPLATE_PACK = "bootstrap5"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3",
                         "NAME": str(HOME / "db.sqlite3")}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
AUTHENTICATION_BACKENDS = TOMTOOLKIT_AUTHENTICATION_BACKENDS
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"
STATIC_ROOT = str(HOME / "_static")
MEDIA_ROOT = str(HOME / "data")
MEDIA_URL = "/data/"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                      "LOCATION": str(HOME / "cache")}}
TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
TARGET_TYPE = "SIDEREAL"
MATCH_MANAGERS: dict[str, str] = {}
FACILITIES: dict[str, dict[str, str]] = {}
DATA_PRODUCT_TYPES = {"photometry": ("photometry", "Photometry")}
DATA_PROCESSORS = {
    "photometry": "tom_dataproducts.processors.photometry_processor.PhotometryProcessor"}
TOM_FACILITY_CLASSES: list[str] = []
EXTRA_FIELDS: list[dict[str, str]] = []
GENERAL_SEARCH_FUNCTIONS: dict[str, str] = {}
SELECTION_EXTRA_FIELDS: list[str] = []
AUTH_STRATEGY = "READ_ONLY"
OPEN_URLS: list[str] = []
TARGET_PERMISSIONS_ONLY = True
TARGET_DEFAULT_PERMISSION = "PRIVATE"
TARGET_LIST_COLUMNS = ["name", "type", "observations", "saved_data"]
HOOKS = {
    "target_post_save": "tom_common.hooks.target_post_save",
    "observation_change_state": "tom_common.hooks.observation_change_state",
    "data_product_post_upload": "tom_dataproducts.hooks.data_product_post_upload",
    "data_product_post_save": "tom_dataproducts.hooks.data_product_post_save",
    "multiple_data_products_post_save":
        "tom_dataproducts.hooks.multiple_data_products_post_save",
}
AUTO_THUMBNAILS = False
THUMBNAIL_MAX_SIZE = (0, 0)
THUMBNAIL_DEFAULT_SIZE = (200, 200)
HINTS_ENABLED = False
HINT_LEVEL = 20
PLOTLY_THEME = "plotly_white"
SHOW_PAGINATION_INFO = True

# the broker: a data service (found through tom_nightjar's app) and a tom_alerts broker
NIGHTJAR = {"url": os.environ.get("NIGHTJAR_URL", "http://127.0.0.1:8000"),
            "api_key": os.environ.get("NIGHTJAR_API_KEY", "")}
DATA_SERVICES = {"Nightjar": NIGHTJAR}
TOM_ALERT_CLASSES = ["tom_nightjar.broker.NightjarBroker"]
