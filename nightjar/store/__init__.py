"""MongoDB persistence: schema, the store (one writer path) and the embedded default."""

from nightjar.sky import Cone
from nightjar.store.embedded import EmbeddedMongo, database_uri, open_store
from nightjar.store.mongo import (
    NightjarStore,
    ObjectFilter,
    ObjectOrder,
    ObjectPage,
    PageKey,
    WriteSummary,
)

__all__ = ["Cone", "EmbeddedMongo", "NightjarStore", "ObjectFilter", "ObjectOrder", "ObjectPage",
           "PageKey", "WriteSummary", "database_uri", "open_store"]
