"""Load generation and benchmarks: Locust files per chapter and the one harness that runs them."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent   # the repository: chapters/, demos/, load/, notebooks/
