"""Shared broker state: tokens, nonces, rate limits and spend."""

from vertex_tools.store.base import Admission, AdmissionResult, RateKey, SpendRequest, StateStore
from vertex_tools.store.sqlite import SqliteStore

__all__ = ["Admission", "AdmissionResult", "RateKey", "SpendRequest", "SqliteStore", "StateStore"]
