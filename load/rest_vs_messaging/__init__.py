"""Chapter 5: REST vs pipeline vs events, the back-in-stock example under load and faults."""
