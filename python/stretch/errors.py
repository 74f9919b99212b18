"""stretch.Error: a failed C call, with its st_status name and message."""

from __future__ import annotations

import enum


class Status(enum.IntEnum):
    """st_status (sdk/include/stretch/common.h)."""
    OK = 0
    INVALID = -1
    NOMEM = -2
    IO = -3
    FORMAT = -4
    UNAVAILABLE = -5
    RANGE = -6
    NOT_FOUND = -7
    ABI = -8
    STATE = -9
    CANCELLED = -10
    PLUGIN = -11
    INTERNAL = -12


class Error(Exception):
    """Raised when a libstretch call fails.

    `status` is a Status (or the raw int for a code this package does not
    know), `name` its C spelling (ST_E_NOT_FOUND), `message` the C message.
    """

    def __init__(self, status: int, message: str):
        try:
            self.status: Status | int = Status(status)
            self.name = "ST_E_" + self.status.name
        except ValueError:
            self.status = status
            self.name = f"st_status {status}"
        self.message = message
        super().__init__(f"{self.name}: {message}")
