"""The two scales of the fault scenarios: small (in `make test` and CI) and full (`make faults`).
A module of its own so that scenario modules can import it by name (every test folder has a
`conftest`)."""
from __future__ import annotations

from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class Scale:
    name: str
    shipments: int  # per group (webhook-only, polled)
    outage_seconds: float
    storm_seconds: float


SMALL = Scale("small", shipments=10, outage_seconds=8, storm_seconds=20)
FULL = Scale("full", shipments=200, outage_seconds=60, storm_seconds=600)
SCALES = [pytest.param(SMALL, id="small"), pytest.param(FULL, id="full", marks=pytest.mark.full_scale)]
