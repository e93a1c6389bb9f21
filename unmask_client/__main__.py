"""`python -m unmask_client ...`"""

from __future__ import annotations

import sys

from unmask_client.cli import main

sys.exit(main())
