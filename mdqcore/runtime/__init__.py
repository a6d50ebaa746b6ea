"""The runtime: control state changes applied live, recorded, and undone."""
