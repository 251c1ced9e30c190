"""Fault-injection tests on the real stack (marked `faults`): kills, outages and restarts while the sample screening replays."""
