"""The store under threads: one unpack per shared layer, and no lock held while asking about containers."""

import io
import os
import threading

from tests.unit.engine.test_image_harness import leftovers, make_store, simple_rootfs


def test_concurrent_imports_of_the_same_rootfs_share_one_layer(tmp_path):
    store = make_store(tmp_path)
    results, errors = [], []

    def work(i):
        try:
            results.append(store.import_image(io.BytesIO(simple_rootfs(b"same" * 10000)), repo=f"img{i}",
                                              message=str(i)))
        except Exception as e:  # collected: a thread's failure must fail the test
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert len({im.id for im in results}) == 6
    assert len(os.listdir(store.root / "layers")) == 1
    assert leftovers(store) == []


def test_remove_asks_about_containers_without_holding_the_store_lock(tmp_path):
    store = make_store(tmp_path)
    image = store.import_image(io.BytesIO(simple_rootfs()), repo="x")
    free = []

    def in_use(iid):
        # The container manager may be blocked on the store from another thread: our lock must be free.
        got = []

        def probe():
            ok = store._lock.acquire(timeout=2)
            got.append(ok)
            if ok:
                store._lock.release()

        t = threading.Thread(target=probe)
        t.start()
        t.join()
        free.append(got[0])
        return []

    store.remove("x", in_use=in_use)
    assert free == [True]
    assert store.is_empty() and image.id
