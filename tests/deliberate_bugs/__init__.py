"""Deliberate bugs: each chapter's list of ways to break its guarantee code, each expected to fail a
named test (``python -m tests.deliberate_bugs.run [chapter_snake]``; ``make mutants`` runs them all).

A file ``<chapter_snake>.py`` here holds ``BUGS``, a list of dicts: ``name`` (what the bug is),
``path`` (the file it changes), ``find`` (text that occurs exactly once in that file), ``replace``
(what it becomes) and ``fails`` (the pytest node id that must fail with the bug in place). They
cover the code mutmut cannot reach: what runs in a subprocess during the tests (workers, servers).
"""
