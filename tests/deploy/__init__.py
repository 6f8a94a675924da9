"""Static checks of the deploy artifacts (Dockerfile, compose, CI workflow, Helm, render.yaml).

No container runtime, registry or cluster is needed: each artifact is parsed, schema-validated
and compared with the Procfile, the one list of process commands everything else must follow.
"""
