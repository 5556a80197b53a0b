"""The development broker's storage set-up (real Kafka tools, no broker started)."""

from __future__ import annotations

import base64
from pathlib import Path

from stream.devbroker import DevKafka, fetch_kafka, missing_tools, new_cluster_id
from tests.conftest import unavailable


def test_storage_formats_with_a_cluster_id_that_begins_with_a_dash(tmp_path: Path) -> None:
    missing = missing_tools()
    if missing:
        unavailable(f"needs {' and '.join(missing)} on PATH")
    # 0xf8 puts 62 in the first base64 digit: '-' in the URL-safe alphabet
    dash_id = base64.urlsafe_b64encode(b"\xf8" + bytes(range(15))).decode().rstrip("=")
    assert dash_id.startswith("-")
    broker = DevKafka(tmp_path / "broker", port=1)
    broker.workdir.mkdir(parents=True)
    props = broker._configure(controller_port=2)
    broker.format_storage(fetch_kafka(), props, dash_id)
    meta = (broker.workdir / "data" / "meta.properties").read_text()
    assert f"cluster.id={dash_id}" in meta.splitlines()


def test_new_cluster_ids_never_begin_with_a_dash() -> None:
    # about 1 in 64 raw ids begins with '-': 3000 draws all but surely include such ids
    ids = {new_cluster_id() for _ in range(3000)}
    assert len(ids) == 3000
    assert not any(i.startswith("-") for i in ids)
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
