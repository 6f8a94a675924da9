"""The Symbol page's Streamlit parts, one concept per module, composed by `ui/app_pages/symbol.py`.

`fetch` (cached REST reads), `fallback` (a failed read keeps the last good data under a banner),
`controls` (symbol, interval, range and SMA, mirrored in the URL), and one module per live
fragment: `metrics`, `chart`, `gaps`, `history`. The pure logic lives in `ui.symbol_view` and
`ui.symbol_page.logic`.
"""
