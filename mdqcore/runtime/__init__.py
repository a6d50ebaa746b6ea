"""The runtime: control state changes applied live, recorded, and undone."""

from .hotplug import ApplyResult, Runtime, Slot, base_data, check_against
from .signing import TrustPolicy, sign

__all__ = ["ApplyResult", "Runtime", "Slot", "TrustPolicy", "base_data", "check_against", "sign"]
