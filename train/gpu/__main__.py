"""``python -m deepfer.train.gpu`` (or ``python3 -m train.gpu`` from a copied tree)."""

import os
import sys

from .run import main

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
sys.exit(main())
