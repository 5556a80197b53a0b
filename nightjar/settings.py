"""Typed settings, read from the environment once at the edge (CLI, server) and passed in."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Nightjar's configuration; every field can be set as ``NIGHTJAR_<NAME>``.

    ``MONGODB_URI`` (without prefix) selects a real MongoDB; when it is unset the
    embedded nx-27017 server is started under ``home``.
    """

    model_config = SettingsConfigDict(env_prefix="NIGHTJAR_", extra="ignore")

    home: Path = Field(default=Path(".nightjar"),
                       description="working directory of the embedded default")
    mongodb_uri: str | None = Field(
        default=None, validation_alias=AliasChoices("MONGODB_URI", "NIGHTJAR_MONGODB_URI"),
        description="MongoDB connection string; unset = embedded nx-27017")
    database: str = Field(default="nightjar", description="MongoDB database name")
    archive_dir: Path | None = Field(
        default=None, description="alert archive directory (default: <home>/archive)")
    shared_data: Path = Field(default=Path("../shared/data"),
                              description="real data used by tests and the demo")
    batch_size: int = Field(default=2000, ge=1, le=100_000,
                            description="alerts per ingestion batch")
    graphql_host: str = "127.0.0.1"
    graphql_port: int = Field(default=8000, ge=0, le=65535)

    @property
    def archive_path(self) -> Path:
        return self.archive_dir if self.archive_dir is not None else self.home / "archive"
