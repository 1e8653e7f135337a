"""The store's reads on a real SQLite store: one paginated search, studies (parent by name,
children, grouped items), histories in the one curve shape, and the epochs of running runs
from one query whatever their number (the writer tags each epoch in its metric batch)."""
from __future__ import annotations

import collections

import pytest
from mlflow.entities import Metric

from workbench.spec import TrackingSpec
from workbench.tracking import queries
from workbench.tracking.mlflow_sink import MlflowTracker, client_for, ensure_experiment
from workbench.tracking.records import EPOCH_TAG, StoreError
from workbench.tracking.store import MlflowStore


class CountingClient:
    """The real client, counting the calls made through it (by method name)."""

    def __init__(self, client):
        self._client = client
        self.calls: collections.Counter = collections.Counter()

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            self.calls[name] += 1
            return attr(*args, **kwargs)

        return call


@pytest.fixture
def store(mlflow_uri):
    client, _ = client_for(mlflow_uri)
    return client, ensure_experiment(client, mlflow_uri, "workbench")


def tracked_run(client, exp: str, epochs: int, **tags: str) -> str:
    """A RUNNING run that logged ``epochs`` epochs through the engine's tracker."""
    tr = MlflowTracker(TrackingSpec(), client=client)
    tr.run_id = client.create_run(exp, tags=tags).info.run_id
    for e in range(1, epochs + 1):
        tr.log_metrics({"backbone/train_loss": 1.0 / e, "backbone/test_acc": 50.0 + e}, e)
    return tr.run_id


def test_active_runs_read_every_epoch_in_two_queries_however_many_runs(store, mlflow_uri):
    client, exp = store
    parent = client.create_run(exp, tags={"study.kind": "parent", "study.name": "s"}).info.run_id  # RUNNING
    legacy = client.create_run(exp).info.run_id  # logged before the epoch tag: epoch from its latest step
    client.log_batch(legacy, metrics=[Metric("backbone/train_loss", 0.5, 0, s) for s in (1, 2, 3)])
    done = tracked_run(client, exp, 2)
    client.set_terminated(done, "FINISHED")
    counts = {}
    expected = {legacy: 3}
    for n in (1, 6):
        while len(expected) < n + 1:
            expected[tracked_run(client, exp, len(expected) + 1, **{"mlflow.parentRunId": parent})] = len(expected) + 1
        s = MlflowStore(mlflow_uri)
        s._client = CountingClient(client)
        active = s.active_runs()
        assert {r["run_id"]: r["epoch"] for r in active} == expected  # no parent, no finished run
        counts[n] = dict(s._client.calls)
    assert counts[1] == counts[6] == {"search_experiments": 1, "search_runs": 1}
    assert client.get_run(done).data.tags[EPOCH_TAG] == "2"


def test_one_search_pages_through_results_up_to_a_limit(store):
    client, exp = store
    ids = [client.create_run(exp, start_time=1000 + i).info.run_id for i in range(5)]
    counting = CountingClient(client)
    newest = queries.search(counting, [exp], page_size=2)
    assert [r["run_id"] for r in newest] == ids[::-1] and counting.calls["search_runs"] == 3
    assert [r["run_id"] for r in queries.search(client, None, limit=3, page_size=2)] == ids[:1:-1]
    oldest = queries.search(client, [exp], "attributes.status = 'RUNNING'", order_by=queries.OLDEST_FIRST)
    assert [r["run_id"] for r in oldest] == ids
    assert oldest[0]["experiment_id"] == exp and oldest[0]["start_time"] == 1000 and oldest[0]["parent_run_id"] is None
    assert queries.search(client, [], "") == []


def test_study_parent_children_and_items(store, mlflow_uri):
    client, exp = store
    old = client.create_run(exp, tags={"study.kind": "parent", "study.name": "grid"}, start_time=1).info.run_id
    parent = client.create_run(exp, tags={"study.kind": "parent", "study.name": "grid"}, start_time=2).info.run_id
    kids = [client.create_run(exp, tags={"mlflow.parentRunId": parent}, start_time=10 + i).info.run_id
            for i in range(3)]
    client.set_terminated(kids[1], "FAILED")
    alone = client.create_run(exp, run_name="alone", start_time=20).info.run_id
    assert queries.find_parent(client, exp, "grid") == parent
    assert queries.find_parent(client, exp, "other") is None
    assert [r["run_id"] for r in queries.children(client, parent, page_size=2)] == kids
    assert [r["run_id"] for r in queries.children(client, parent, status="FAILED")] == [kids[1]]
    with pytest.raises(StoreError, match=r"^run 0+: not found in the tracking store"):
        queries.children(client, "0" * 32)
    with pytest.raises(StoreError, match="experiment 'nope': not found"):
        queries.experiment_id(client, "nope")
    items = MlflowStore(mlflow_uri).items()
    assert [(it.kind, it.run_id) for it in items] == [("run", alone), ("study", parent), ("study", old)]
    assert [c["run_id"] for c in items[1].children] == kids and items[1].label() == "grid (3 runs)"


def test_histories_are_step_sorted_lists_and_a_repeated_step_keeps_the_later_point(store, mlflow_uri):
    client, exp = store
    run = client.create_run(exp).info.run_id
    client.log_batch(run, metrics=[Metric("backbone/test_acc", v, ts, s)
                                   for v, ts, s in ((60.0, 1, 2), (50.0, 1, 1), (61.0, 5, 2), (70.0, 2, 3))])
    client.log_batch(run, metrics=[Metric("final/backbone_test_acc", 70.0, 9, 3)])
    hist = MlflowStore(mlflow_uri).history(run, ["backbone/test_acc", "lr"])
    assert hist == {"backbone/test_acc": ([1, 2, 3], [50.0, 61.0, 70.0])}  # "lr" never logged: absent
    assert set(queries.metric_histories(client, run)) == {"backbone/test_acc"}  # final/* left out


def test_text_artifacts_and_the_file_list(store, mlflow_uri):
    client, exp = store
    run = client.create_run(exp).info.run_id
    client.log_text(run, "seed = 1\n", "spec.toml")
    client.log_text(run, "x" * 200_000, "weights/average.pt")
    s = MlflowStore(mlflow_uri)
    assert s.artifacts(run) == ["spec.toml", "weights/average.pt  (0.2 MB)"]
    assert s.text_artifact(run, "spec.toml") == "seed = 1\n"
    assert s.text_artifact(run, "error.txt") is None
