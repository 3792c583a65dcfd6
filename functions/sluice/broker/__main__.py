"""``python -m sluice.broker``: the local broker in the foreground (``sluice up`` daemonises it)."""

import sys

from sluice.broker.server import main

sys.exit(main())
