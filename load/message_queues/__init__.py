"""Chapter 4 load: the registration locustfile and the scenarios the harness runs."""
