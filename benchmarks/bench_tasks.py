"""Tasks the benchmarks run (``--app bench_tasks:app``)."""

from pgqueue import App

app = App()


@app.task
def noop(n: int = 0) -> None:
    return None
