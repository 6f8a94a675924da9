"""Shared test support: servers, processes, load, the exactly-once verifier and contract builders."""
