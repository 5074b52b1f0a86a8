"""Whole-stack benchmark: gunicorn, the django-q2 cluster and the Gemini emulator as
subprocesses on loopback, driven over HTTP by a separate load process.

`python -m bench --help`; docs/performance.md has the command lines and the results.
"""
