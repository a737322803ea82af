"""The demo's services: each module is a program of its own (`python -m ...`), started by
`stethoscope.demo.system` under `steth run`, and talking to the others over loopback HTTP."""
