from django.db import models


class StreamCursor(models.Model):
    """The last match of a saved filter taken into the TOM (``nightjar_stream`` goes on
    after it).  Kept in the database: the toolkit clears the cache on every query."""

    filter_id = models.CharField(max_length=64, unique=True)
    last_seq = models.BigIntegerField(default=0)
    updated = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.filter_id} after {self.last_seq}"
