"""Chapter 3 load: the flash-crowd locustfile, the scenarios the harness runs and their analysis."""
