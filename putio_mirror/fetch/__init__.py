"""Fetching one file from a put.io node: one engine, for a big file and a small one alike.

``engine.Fetcher`` fills a part file and verifies it; a file too small to split is the
same fetch with one segment. Below it: ``crew`` (the workers filling segments),
``segments`` (the segment table and its sidecar), ``partfile`` (safe opens, syncs,
verification), ``nodehttp`` (ranged requests to a node, patience), ``throttle`` (one
bandwidth limit for every connection), ``values`` (``FileToFetch``, ``Fetched``) and
``crc``. Knows nothing of put.io's API, the journal or the mirror's layout: it is given
a URL and a part file, and leaves a verified part file (or an error) behind.
"""
