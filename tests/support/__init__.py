"""Shared test support: servers, processes, load, verification and contract builders."""
