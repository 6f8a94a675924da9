"""The Feeder page's Streamlit parts, one concept per module, composed by `ui/app_pages/feeder.py`.

`fetch` (cached backend reads), `form_state` (what the session remembers about the form),
`actions` (the button callbacks), `controls` (the form and the burst buttons), `status` (config
badges and the per-feeder table), `rate_chart` (target vs achieved TPS), `live` (the fragment that
refreshes the last two). The pure logic lives in `ui.feeder_panel` and `ui.feeder_page.logic`.
"""
