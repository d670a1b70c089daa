"""``putio-mirror mount``: the account as a read-only folder, named as the mirror names it."""
