from putio_mirror.cli.main import entry

entry()
