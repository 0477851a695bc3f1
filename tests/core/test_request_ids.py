"""Request ids: random version-4 UUIDs, none repeated across threads or a forked child."""

import os
import threading
import uuid

from core.request_ids import PAGE_BYTES, request_id


def test_ids_are_version_4_uuids_never_repeated_over_many_pages():
    # when: more ids than one page holds
    ids = [request_id() for _ in range(PAGE_BYTES // 16 * 5)]

    # then
    assert len(set(ids)) == len(ids)
    assert {(i.version, i.variant) for i in ids} == {(4, uuid.RFC_4122)}


def test_threads_never_share_ids():
    # given
    ids: list[list[uuid.UUID]] = [[] for _ in range(4)]

    def draw(into: list) -> None:
        into.extend(request_id() for _ in range(1000))

    # when
    threads = [threading.Thread(target=draw, args=(into,)) for into in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then
    every = [i for drawn in ids for i in drawn]
    assert len(set(every)) == len(every) == 4000


def test_a_forked_child_does_not_give_the_ids_its_parent_gives_next():
    # given: a page begun in the parent
    request_id()
    read, write = os.pipe()

    # when
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.close(read)
        os.write(write, b"".join(request_id().bytes for _ in range(8)))
        os._exit(0)
    os.close(write)
    child = os.read(read, 16 * 8)
    os.close(read)
    os.waitpid(pid, 0)
    parent = b"".join(request_id().bytes for _ in range(8))

    # then
    assert len(child) == 16 * 8
    assert child != parent
    assert {child[i : i + 16] for i in range(0, len(child), 16)}.isdisjoint(
        {parent[i : i + 16] for i in range(0, len(parent), 16)}
    )
