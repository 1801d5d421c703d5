"""Load generation and benchmarks: Locust files per chapter and the one harness that runs them."""
