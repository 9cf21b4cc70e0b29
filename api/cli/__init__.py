"""`deskpool`: the command-line client of the deskpool API (typer, httpx, rich).

`main.app` is the entry point; `client.ApiClient` is the one place that speaks HTTP.
"""
