"""Maintenance scripts for simxen (not imported at run time)."""
