"""MongoDB persistence: schema, the store (one writer path) and the embedded default."""

from nightjar.store.embedded import EmbeddedMongo, database_uri, open_store
from nightjar.store.mongo import Cone, NightjarStore, ObjectFilter, WriteSummary

__all__ = ["Cone", "EmbeddedMongo", "NightjarStore", "ObjectFilter", "WriteSummary",
           "database_uri", "open_store"]
