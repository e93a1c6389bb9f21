"""The one event scans announce to the apps built on them: a scan reached `done` or `failed`.

Sent once the change is committed, with `scan_id`. The webhooks app listens (see `webhooks.apps`); a signal
keeps the dependency pointing one way: scans never imports the apps that react to it.
"""

from __future__ import annotations

from django.dispatch import Signal

scan_finished = Signal()
