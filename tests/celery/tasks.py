"""A Celery app for the tests: `add` writes its result to $KMQ_CELERY_OUT, one line per call, with
the task id, so a test can see that a real worker ran what kmq sent."""
import json
import os

from celery import Celery

app = Celery("tasks", broker=os.environ["KMQ_CELERY_BROKER"])
app.conf.task_default_queue = os.environ.get("KMQ_CELERY_QUEUE", "celery")


@app.task(bind=True)
def add(self, x, y, scale=1):
    with open(os.environ["KMQ_CELERY_OUT"], "a") as out:
        out.write(json.dumps({"id": self.request.id, "result": (x + y) * scale}) + "\n")
    return (x + y) * scale


@app.task(bind=True)
def echo(self, *args, **kwargs):
    """What the worker received, as Python sees it: exact integers stay exact."""
    with open(os.environ["KMQ_CELERY_OUT"], "a") as out:
        out.write(json.dumps({"id": self.request.id, "args": repr(args), "kwargs": repr(kwargs)}) + "\n")
