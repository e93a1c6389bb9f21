"""The events scans announce to the apps built on them: a scan reached `done` or `failed` (`scan_finished`), and a
person recorded a reviewer label on it (`scan_reviewed`, sent by newsroom's reviews).

Sent once the change is committed, with `scan_id`. The webhooks app listens (see `webhooks.apps`); a signal
keeps the dependency pointing one way: scans never imports the apps that react to it.
"""

from __future__ import annotations

from django.dispatch import Signal

scan_finished = Signal()
scan_reviewed = Signal()
