"""A pre-fork WSGI server: ``python -m servers.prefork APP --bind HOST:PORT --workers N``.

A master (:mod:`.arbiter`) binds one listening socket, forks ``--workers`` workers
(:mod:`.worker`) that share it, and supervises them: signals, health checks on a shared
:mod:`.scoreboard`, restarts, max-requests recycling, rolling reloads. Workers accept and
balance connections among themselves (:mod:`.balance`) and keep waiting connections in
an epoll set (:mod:`.parking`). The theory of operation (process model, signals, states,
the balancing rules, the status file) is in ``docs/explanation/prefork.md``.
"""
