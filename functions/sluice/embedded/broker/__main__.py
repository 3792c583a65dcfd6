"""``python -m sluice.embedded.broker``: the local broker in the foreground (``sluice up`` daemonises it)."""

import sys

from sluice.embedded.broker.server import main

sys.exit(main())
