"""HTTP plumbing shared by the put.io client and the fetch engine: one connection pool for
the process, and a session that reads the proxy environment once per host, not per request."""
