import sys

from workbench.tui import main

sys.exit(main())
