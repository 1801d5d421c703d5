"""Process limits a server raises for itself (standard library only: demos need nothing else)."""


def raise_open_files_limit() -> int:
    """Raise this process's open-files soft limit to its hard limit and return the soft limit.

    Every client connection costs a file descriptor (two in a proxy), and a shell's default soft
    limit, often 1,024, refuses clients long before memory runs out. Raising the soft limit up to
    the hard one needs no privilege; past the hard one needs root (`ulimit -Hn`)."""
    try:
        import resource
    except ImportError:               # Windows: no such limit to raise
        return 0
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard != resource.RLIM_INFINITY:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft
