"""An app with a per-second schedule, for real `pgq beat` processes (--app beat_app:app)."""

import datetime as dt

from pgqueue import App

app = App()


@app.periodic(every=dt.timedelta(seconds=1), catch_up="all", name="every-second")
@app.task
def tick() -> None:
    return None
