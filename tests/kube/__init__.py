"""Kubernetes API emulator for tests (see emulator.py) and the local Job runner (kubelet*.py)."""
