"""A faithful local imitation of put.io over real HTTP on 127.0.0.1, for tests and the demo.

It stands in for the outside world, so it imports nothing of putio_mirror.
"""

from putio_mirror.fakeputio.fake import FakePutio, LoggedRequest

__all__ = ["FakePutio", "LoggedRequest"]
