"""The agent's on-node record of finished items: name -> hash, written atomically.

Written after an item succeeds and before that success is reported, so a crash between
the two re-reports the item instead of re-running it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from services.lcm.agent.files import open_for_write

JOURNAL = "var/lib/ccloud/lcm-agent/done.json"


class Journal:
    def __init__(self, root: Path, *, sync: bool = True) -> None:
        """``sync`` False skips the fsync of each mark: for nodes simulated as directories
        of one host (``bench.fleet``), whose crash is a killed process - which the page
        cache outlives - and where thousands of fsyncs a second held up every other node."""
        self.path = root / JOURNAL
        self.sync = sync
        self.done: dict[str, str] = {}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text())
                self.done = {str(k): str(v) for k, v in data.items()}
            except (ValueError, AttributeError):
                self.done = {}

    def finished(self, name: str, hash_: str) -> bool:
        return self.done.get(name) == hash_

    def mark(self, name: str, hash_: str) -> None:
        self.done[name] = hash_
        tmp = self.path.with_suffix(".tmp")
        with open_for_write(tmp) as f:
            json.dump(self.done, f, sort_keys=True)
            if self.sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, self.path)
