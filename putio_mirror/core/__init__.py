"""The pure core: what the account and the disk look like, and what to do about it.

No I/O and no clock (an import-linter contract holds it): values in (``state``), a plan out
(``reconcile`` via ``mirroring`` for the file lifecycle), and the rules they lean on —
names, windows, bandwidth timetable, selection, retry policy, formatting, errors.
"""
