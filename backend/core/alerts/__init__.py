"""Alerts, pure: rule contracts (`rules`), the crossing logic (`conditions`), and what a firing
is and how it is signed (`firing`). No I/O here; the bus, storage, actors and routes call in."""
