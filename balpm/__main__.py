import sys

from balpm.cli import main

sys.exit(main())
