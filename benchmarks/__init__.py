"""tokenwire's overhead benchmarks: `python -m benchmarks --help` from a checkout.

Every scenario times the metered call interleaved with the same call unmetered,
in one process, and reports the ratio and the time added. The modules that the
peer harnesses import (`measure`, `payloads`, `mock`, `loopback`) need only the
standard library and `httpx2`, so they also run in the peers' virtualenvs,
where tokenwire is not installed.
"""
