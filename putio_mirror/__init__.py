"""putio-mirror: keep a put.io account and a home server in step."""

__version__ = "0.1.0"
