"""`python -m bench.worker`: `manage.py qcluster` with SQL statements counted per process.

django-q2 forks its worker processes from this one (Linux default start method), so the
connection hook is inherited; `os.register_at_fork` gives each child its own counter file.
"""

from __future__ import annotations

import os

import django
from django.core.management import call_command

from bench import querycount

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    querycount.install("worker")
    os.register_at_fork(after_in_child=lambda: querycount.after_fork("worker"))
    call_command("qcluster")
