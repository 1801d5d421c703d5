"""Chapter 4, message queues (分布式消息队列): user registration, serial vs parallel vs queued.

Registering writes the user to a database, then sends a welcome e-mail and an SMS. The three
variants differ only in how they order those steps:

- ``serial``: write, e-mail, SMS in turn (150 ms at 50 ms a step);
- ``parallel``: write, then e-mail and SMS at the same time (100 ms);
- ``queued``: write and publish two jobs through kombu, answer (50 ms); ``worker`` sends them later.
"""
