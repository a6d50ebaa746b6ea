"""The runtime: control state changes applied live, checked against the operator policy, recorded, undone."""

from ..signing import TrustPolicy, sign
from .checks import base_data, check_against
from .hotplug import DEFAULT, ApplyResult, Runtime, Slot
from .policy import Canary, Policy

__all__ = ["ApplyResult", "Canary", "DEFAULT", "Policy", "Runtime", "Slot", "TrustPolicy", "base_data",
           "check_against", "sign"]
