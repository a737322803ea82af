"""Stethoscope: find what broke in a distributed system, where, and why."""

__version__ = "0.1.0"
