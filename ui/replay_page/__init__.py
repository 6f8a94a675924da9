"""The Replay page's Streamlit parts, composed by `ui/app_pages/replay.py`.

`form` (the request form) and `actions` (Start and the control buttons' callbacks), `panel`
(the live list, progress and controls of the selected replay) and `results` (its candles beside
the live ones, its view beside the live view, what would have fired). The pure logic lives in
`ui.replay_form`, `ui.replay_status` and `ui.replay_charts`.
"""
