"""The doors a person uses: the commands (``main``), the watcher, the demo, history,
and what they print — logs, progress, signals, crash reports.
"""
