"""Keeping the Procfile's processes running under `make run`, as the platforms we deploy to do.

`policy` decides how long to wait before a restart (pure, time passed in); `supervisor` starts,
watches, restarts and stops the processes. Our own small loop rather than a library: honcho stops
everything when one process dies, and no well-kept Python supervisor (supervisord, circus) does
exponential backoff with a reset once a process has stayed up, nor embeds in a launcher that
must stop its servers after its processes.
"""
