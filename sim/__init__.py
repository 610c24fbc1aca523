"""The courier simulator: a small HTTP server that speaks EasyParcel's Open API and legacy
tracking API, plays out deterministic shipment journeys on a fast clock, injects faults on demand
and sends tracking webhooks, standing in for EasyParcel on machines with no internet."""
from __future__ import annotations
