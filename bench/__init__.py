"""Benchmarks of issue 6 (not tests: nothing here asserts a timing in the test suite).

Run them with ``python -m bench`` (all) or ``python -m bench NAME`` (one of ``plan_overhead``,
``big_plan``, ``fanout``, ``webhook``). Each prints its absolute figures, a ratio against a
baseline measured in the same run, the target and whether it was met. See ``bench/README.md``
for what each one measures and the figures measured so far.
"""
