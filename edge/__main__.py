import sys

from deepfer.edge.cli import main

sys.exit(main())
