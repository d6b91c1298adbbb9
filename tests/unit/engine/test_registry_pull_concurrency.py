"""Pull downloads three layers at a time, unpacks them in order, keeps Docker's per-layer progress, fails whole."""

from __future__ import annotations

import json
import os
import threading
import tracemalloc

import pytest

from engine.registry import VerificationFailed
from engine.registry.pull import MAX_CONCURRENT_DOWNLOADS
from tests.unit.engine.registry_fake import layer_tar, publish
from tests.unit.engine.test_image_harness import leftovers


def layer_digests(fake, repo="team/app", tag="1"):
    return [layer["digest"] for layer in json.loads(fake.manifests[repo][tag][0])["layers"]]


def pull_threads():
    return [t.name for t in threading.enumerate() if t.name.startswith("pull-")]


def nothing_stored(store):
    return (store.list() == [] and os.listdir(store.root / "layers") == [] and leftovers(store) == []
            and os.listdir(store.root / "blobs" / "sha256") == [])


def test_three_layers_download_at_once_and_never_a_fourth(fake, registry):
    publish(fake, "team/app", "1", [(layer_tar(f"layer {i}".encode() * 1000), "gzip") for i in range(5)])
    layers = set(layer_digests(fake))
    lock = threading.Condition()
    state = {"started": 0, "in_flight": 0, "max": 0}

    def hook(digest, phase):
        if digest not in layers:
            return  # the config blob
        with lock:
            if phase == "start":
                state["started"] += 1
                state["in_flight"] += 1
                state["max"] = max(state["max"], state["in_flight"])
                lock.notify_all()
                # The first downloads wait for each other: a pull that fetched them one by one would stall here.
                lock.wait_for(lambda: state["started"] >= MAX_CONCURRENT_DOWNLOADS, timeout=5)
            else:
                state["in_flight"] -= 1

    fake.blob_hook = hook
    registry.pull(f"{fake.host}/team/app:1")
    assert MAX_CONCURRENT_DOWNLOADS == 3
    assert state["max"] == 3 and state["started"] == 5


def test_progress_is_dockers_sequence_for_every_layer(fake, registry):
    publish(fake, "team/app", "1", [(layer_tar(os.urandom(50_000) + bytes([i])), "gzip") for i in range(4)])
    ids = [d.split(":")[1][:12] for d in layer_digests(fake)]
    messages = []
    registry.pull(f"{fake.host}/team/app:1", progress=messages.append)

    def statuses(lid):
        out = []
        for m in messages:
            if m.get("id") == lid and (not out or out[-1] != m["status"]):
                out.append(m["status"])
        return out

    expected = ["Pulling fs layer", "Downloading", "Verifying Checksum", "Download complete", "Extracting",
                "Pull complete"]
    for lid in ids[:3]:
        assert statuses(lid) == expected, lid
    # The fourth waits for a download slot, as dockerd says.
    assert statuses(ids[3]) == expected[:1] + ["Waiting"] + expected[1:]
    # Every layer is announced before any transfer, and layers complete bottom first.
    first_transfer = next(i for i, m in enumerate(messages) if m["status"] in ("Downloading", "Waiting"))
    assert [m["id"] for m in messages[:first_transfer] if m["status"] == "Pulling fs layer"] == ids
    assert [m["id"] for m in messages if m["status"] == "Pull complete"] == ids
    for m in messages:
        if m["status"] in ("Downloading", "Extracting"):
            assert 0 <= m["progressDetail"]["current"] <= m["progressDetail"]["total"]


def test_a_later_layer_downloads_while_an_earlier_one_unpacks(fake, registry, store, monkeypatch):
    publish(fake, "team/app", "1", [(layer_tar(b"bottom"), "gzip"), (layer_tar(b"top"), "gzip")])
    top = layer_digests(fake)[1]
    top_downloaded = threading.Event()
    fake.blob_hook = lambda digest, phase: top_downloaded.set() if (digest, phase) == (top, "end") else None
    seen = []
    real_add_layer = store.add_layer

    def slow_add_layer(stream, parent, held, expect_diff_id=None):
        if not parent:
            # Unpacking the bottom layer: the top one must be able to arrive meanwhile.
            seen.append(top_downloaded.wait(5))
        return real_add_layer(stream, parent, held, expect_diff_id=expect_diff_id)

    monkeypatch.setattr(store, "add_layer", slow_add_layer)
    image = registry.pull(f"{fake.host}/team/app:1")
    assert seen == [True]
    assert [(d / "etc" / "marker").read_bytes() for d in store.layer_dirs(image)] == [b"top", b"bottom"]


def test_a_bad_layer_cancels_the_other_downloads_at_once_and_stores_nothing(fake, registry, store):
    publish(fake, "team/app", "1", [(layer_tar(os.urandom(400_000)), "none"), (layer_tar(b"bad"), "gzip"),
                                    (layer_tar(os.urandom(400_000)), "none")])
    slow_a, bad, slow_b = layer_digests(fake)
    fake.tampered[bad] = fake.blobs[bad][:-8] + b"\0" * 8
    fake.blob_rate = 40_000   # the two big layers would take ten seconds each
    finished = []
    fake.blob_hook = lambda digest, phase: finished.append(digest) if phase == "end" else None
    with pytest.raises(VerificationFailed, match=f"filesystem layer verification failed for digest {bad}"):
        registry.pull(f"{fake.host}/team/app:1")
    # The pull gave up without waiting for the two big downloads: the registry never finished sending them.
    assert slow_a not in finished and slow_b not in finished
    assert pull_threads() == []
    assert nothing_stored(store)


def test_closing_the_stream_mid_pull_stops_the_transfers_and_stores_nothing(fake, registry, store):
    publish(fake, "team/app", "1", [(layer_tar(os.urandom(300_000)), "none"), (layer_tar(os.urandom(300_000)),
                                                                                "none")])
    fake.blob_rate = 60_000   # five seconds per layer
    finished = []
    fake.blob_hook = lambda digest, phase: finished.append(digest) if phase == "end" else None
    stream = registry.pull_stream(f"{fake.host}/team/app:1")
    for message in stream:
        if message["status"] == "Downloading":
            break
    stream.close()   # what the API server does when the client goes away
    # Closed without waiting for a layer download to end (the small config blob may have been sent whole).
    assert not set(layer_digests(fake)) & set(finished)
    assert pull_threads() == []
    assert nothing_stored(store)


def test_pull_memory_stays_flat_whatever_the_layer_sizes(fake, registry):
    size = 32 << 20
    publish(fake, "team/app", "1", [(layer_tar(os.urandom(size)), "none") for _ in range(3)])
    tracemalloc.start()
    try:
        registry.pull(f"{fake.host}/team/app:1")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Three 32 MiB layers in flight: blobs go through spool files in 1 MiB chunks, never whole into memory. The
    # peak is the chunks the three downloads and the extraction hold at once: 5-9 MiB here, whatever the layer
    # sizes (the bound was once the layers' own 8 MiB, which the peak's jitter crossed one run in five).
    assert peak < size / 2, f"peak {peak / (1 << 20):.1f} MiB"


def test_a_blob_used_by_two_layers_is_downloaded_once(fake, registry, store):
    same, other = layer_tar(b"twice"), layer_tar(b"between")
    publish(fake, "team/app", "1", [(same, "gzip"), (other, "gzip"), (same, "gzip")])
    twice = layer_digests(fake)[0]
    messages = []
    image = registry.pull(f"{fake.host}/team/app:1", progress=messages.append)
    assert len(image.diff_ids) == 3 and image.diff_ids[0] == image.diff_ids[2]
    assert fake.count("GET", twice) == 1
    lid = twice.split(":")[1][:12]
    assert [m["status"] for m in messages if m.get("id") == lid].count("Pulling fs layer") == 1
    assert [m["status"] for m in messages if m.get("id") == lid].count("Pull complete") == 2
    assert leftovers(store) == []
