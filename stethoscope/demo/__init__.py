"""The demo: a small shop of cooperating processes, a fault catalogue, and `steth demo`.

`services/` holds the programs (each runs on its own: `python -m stethoscope.demo.services.X`,
`node services/shipping.js`), `system.py` starts and stops them under `steth run`, `control.py`
is the fault channel inside each Python service, `faults.py` the catalogue and the injector with
its ground truth, `scenario.py` one demo run (collector, system, load, baseline, fault, report).
"""
