"""``python -m services.bootstrap create|resume|rollback`` (also ``ccloud bootstrap``)."""

import sys

from services.bootstrap.cli import main

if __name__ == "__main__":
    sys.exit(main())
