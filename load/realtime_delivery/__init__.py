"""Chapter 1 load: web IM receivers per transport, a publisher, and the scenarios the harness runs."""
