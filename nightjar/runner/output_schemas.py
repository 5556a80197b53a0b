"""Nightjar's output schemas in a schema registry: registered by workers, resolved by
readers.  The I/O half of :class:`nightjar.runner.records.OutputCodec` (which is pure)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import fastavro

from nightjar.runner.records import CONTAINERS, OutputCodec, schema_text
from nightjar.settings import Settings
from nightjar.surveys.avro import RegistryClient, http_fetch, http_post


def subject_of(topic: str) -> str:
    """The registry subject of a topic's values (Confluent's TopicNameStrategy)."""
    return f"{topic}-value"


def registered_codec(registry: RegistryClient, topics: Mapping[str, str]) -> OutputCodec:
    """Register each output schema (name -> the topic it is published on) and return the
    codec that writes the wire format with their ids.  Raises ``OSError`` when the
    registry refuses or cannot be reached."""
    return OutputCodec({name: registry.register(subject_of(topic), schema_text(name))
                        for name, topic in topics.items()})


def _registry(settings: Settings) -> RegistryClient | None:
    if not settings.output_schema_registry_url:
        return None
    timeout = settings.lsst_schema_registry_timeout
    return RegistryClient(settings.output_schema_registry_url, http_fetch(timeout),
                          http_post(timeout))


def output_codec(settings: Settings) -> OutputCodec:
    """The workers' codec: the wire format with a registry configured, else containers."""
    registry = _registry(settings)
    if registry is None:
        return CONTAINERS
    return registered_codec(registry, {"classification": settings.topic_classifications,
                                       "dead_letter": settings.topic_dead_letters})


class SchemaResolver:
    """Schema id -> parsed writer schema, each id asked of the registry once."""

    def __init__(self, registry: RegistryClient):
        self.registry = registry
        self._parsed: dict[int, Any] = {}

    def __call__(self, schema_id: int) -> Any:
        if schema_id not in self._parsed:
            found = self.registry.schema_json(schema_id)
            if found is None:
                raise ValueError(f"schema id {schema_id} is not in the registry")
            self._parsed[schema_id] = fastavro.parse_schema(found)
        return self._parsed[schema_id]


def output_schema_resolver(settings: Settings) -> Callable[[int], Any] | None:
    """What readers of the output topics need for wire-format records (None: no registry
    configured, only containers can be read)."""
    registry = _registry(settings)
    return SchemaResolver(registry) if registry is not None else None
