import sys

from putio_mirror.cli import main

sys.exit(main())
