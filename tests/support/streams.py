"""Streams for the log tests: one that fails its first write, as a full disk would."""

from __future__ import annotations

import io


class FailsFirstWrite(io.StringIO):
    """Raises OSError("disk full") on its first write, then writes as a StringIO; mixed in before a
    recording stream, it fails before that one records."""

    failed = False

    def write(self, text: str) -> int:
        if not self.failed:
            self.failed = True
            raise OSError("disk full")
        return super().write(text)
