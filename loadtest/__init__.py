"""The load-test harness, the engine benchmark and the synthetic corpus generator."""
