"""put.io's API v2: the HTTP client (``client``) and its answers as core values (``values``)."""
