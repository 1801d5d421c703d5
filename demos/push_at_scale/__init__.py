"""Chapter 2: push at scale (Meizu's push system, small enough to read).

Reading order: ``tokens`` (who a device is), ``store`` (every message stored before it is routed,
sequence numbers, acks, the bounded offline store), ``routing`` (which gateway holds which device),
``bus`` (kombu, one message per gateway), ``api`` (the Flask push API), ``gateway`` (the
``websockets`` server holding the devices), ``device`` (the client the tests and loads use).
"""
