import sys

from btcore.cli import main

sys.exit(main())
