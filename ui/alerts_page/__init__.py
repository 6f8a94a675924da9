"""The alert UI's Streamlit parts, composed by `ui/app_pages/alerts.py`, `ui/app.py` (the
notifier on every page) and the Symbol page (the compact create form).

`fetch` (cached backend reads), `marks` (what a session remembers about the feed's alerts),
`notifier` (toasts and the unread count, on every page), `form` and `actions` (the create form
and every button's callback), `rules` (the rules table), `history` (the live firing history).
The pure logic lives in `ui.alerts_view`.
"""
