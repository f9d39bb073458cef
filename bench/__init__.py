"""The benchmark suite: overhead, side-by-side alternatives, throughput, recovery,
history size and cost, all measured in one invocation (``make bench``).

Not part of ``make test``: it prints figures and never asserts timings.
"""
