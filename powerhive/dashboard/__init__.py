"""The PowerHive dashboard: the chain in the browser, read through the client library.

`powerhive dashboard` serves it (`app.serve`); `make dashboard` runs it against the chain of
`make deploy-local`. docs/dashboard.md has the pages and the design.
"""
