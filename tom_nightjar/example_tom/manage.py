#!/usr/bin/env python
"""The example TOM's manage.py (Django's own)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_tom.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
