"""``manage.py nightjar_stream FILTER``: a saved filter's matches into the TOM, live."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tom_nightjar.core import client
from tom_nightjar.stream import stream


class Command(BaseCommand):
    help = ("Stream a saved Nightjar filter's matches into targets with their photometry "
            "(what matched while the command was off is taken first).")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("filter_id", help="the saved filter's id")
        parser.add_argument("--max-matches", type=int, default=None,
                            help="stop after this many matches")
        parser.add_argument("--duration", type=float, default=None,
                            help="stop after this many seconds")
        parser.add_argument("--poll", type=float, default=30.0,
                            help="seconds between polls when the subscription is quiet")
        parser.add_argument("--no-photometry", action="store_true",
                            help="make targets without their light curves")

    def handle(self, *args: Any, **options: Any) -> None:
        filter_id = options["filter_id"]

        def ready() -> None:
            self.stdout.write(f"listening for matches of {filter_id}")
            self.stdout.flush()

        with client() as nj:
            summary = asyncio.run(stream(
                nj, filter_id, max_matches=options["max_matches"],
                duration_s=options["duration"], poll_s=options["poll"],
                photometry=not options["no_photometry"], on_ready=ready))
        self.stdout.write(json.dumps({
            "matches": summary.matches, "live": summary.live, "polled": summary.polled,
            "targets_created": summary.targets_created, "points": summary.points,
            "last_seq": summary.last_seq, "oids": summary.oids}))
