"""Fetching one file from a put.io node: ranged HTTP, segments, write-behind, CRC32, throttle.

Knows nothing of put.io's API, the journal or the mirror's layout: it is given a URL and
a part file, and leaves a verified part file (or an error) behind.
"""
