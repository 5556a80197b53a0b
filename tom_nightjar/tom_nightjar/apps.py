from typing import Any

from django.apps import AppConfig


class TomNightjarConfig(AppConfig):
    """Nightjar in a TOM: the data service (TOM Toolkit 3), the stream's cursor model and
    ``manage.py nightjar_stream``."""

    name = "tom_nightjar"
    verbose_name = "Nightjar broker"
    default_auto_field = "django.db.models.BigAutoField"

    def data_services(self) -> list[dict[str, Any]]:
        return [{"class": "tom_nightjar.dataservice.NightjarDataService"}]
