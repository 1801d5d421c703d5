"""Chapter 2: push at scale."""
