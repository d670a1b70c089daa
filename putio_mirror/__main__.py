from putio_mirror.cli import entry

entry()
