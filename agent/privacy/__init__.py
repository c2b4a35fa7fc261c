"""The privacy core: pure code deciding whether a fix may leave the device, and in what form.

``policy`` (the policy tables), ``consent`` (consent state), ``gate`` (fail-closed decisions), ``pseudonym``,
``coarsen`` (keyed grid, planar Laplace, time buckets, daily cap), ``deidentify`` (fix -> upload object ->
bytes) and ``leakcheck`` (the independent last look at the bytes). See docs/privacy.md.
"""
