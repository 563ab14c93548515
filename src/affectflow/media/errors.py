"""The one error media decoding raises: a reason a user can act on (missing, corrupt, truncated)."""

from __future__ import annotations


class MediaError(Exception):
    """A media file or segment cannot be decoded; `reason` says why (shown to the user)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
