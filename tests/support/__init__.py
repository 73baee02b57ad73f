"""Test-support library for tests that drive the real programs.

Modules (each small and importable on its own):

- ``ports``: free loopback ports and HTTP readiness polling.
- ``procs``: ``ManagedProcess``, a subprocess with readiness, timeouts and
  guaranteed cleanup.
- ``registry``: ``RegistryServer``, the real CNCF ``docker-registry`` with
  byte accounting from its JSON log.
- ``registry_log``: the parser behind that byte accounting.
- ``images``: offline test images (umoci) and pushing them (skopeo).
- ``skopeo``: pulling with skopeo, registries.conf drop-ins, verifying pulls.
- ``fixtures``: pytest fixtures (load with ``pytest_plugins``).
- ``faulty_peer``: ``damselfly peer`` serving corrupt pieces, a test entry point (``python -m``).
"""
