"""The directory `steth run` puts first on a Python child's PYTHONPATH.

It holds only `sitecustomize.py` (this file aside), so that the child sees nothing else of ours
as a top-level module.
"""
