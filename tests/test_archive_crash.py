"""The archive consumer under ``kill -9``: killed at random moments while events stream in and
restarted, it ends with every event exactly once, and every file agrees with the index."""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
from datetime import timedelta

from newswire import codec
from newswire.consumers.archive.archiver import default_root
from newswire.consumers.archive.reader import ArchiveReader
from newswire.consumers.replay import groups
from tests.replay_support import NEWSWIRE, T0, cli_env, events, own_group, own_groups, produce


def _start(settings, log):
    return subprocess.Popen([*NEWSWIRE, "archive", "run", "--idle-stop", "4"],
                            env=cli_env(settings) | own_groups(settings),
                            stdout=log, stderr=subprocess.STDOUT)


def test_kill_9_at_random_moments_loses_and_duplicates_nothing(settings, tmp_path):
    stream = events(2000, seed=21)
    # a re-sent event (same event id, e.g. a producer retry by hand) must be archived once too
    stream += [stream[5], stream[17]]
    chunks = [stream[i:i + 100] for i in range(0, len(stream), 100)]

    failures = []

    def feed():  # events keep arriving while the archive is being killed; they span two days
        try:
            for n, chunk in enumerate(chunks):
                produce(settings, chunk, start=_start_of(n), step=timedelta(seconds=40), v1_every=7)
                time.sleep(0.4)
        except Exception as exc:  # reported by the test below
            failures.append(exc)

    producer = threading.Thread(target=feed)
    producer.start()
    rng = random.Random(5)
    kills = 0
    with open(tmp_path / "archive.log", "wb") as log:
        while producer.is_alive() or kills < 5:
            process = _start(settings, log)
            time.sleep(rng.uniform(1.2, 3.5))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                kills += 1
            process.wait()
        producer.join()
        assert not failures
        final = _start(settings, log)  # runs until 4 s without events
        assert final.wait(timeout=120) == 0, (tmp_path / "archive.log").read_text()[-3000:]
    assert kills >= 5
    # stopped cleanly, the static member left its group: the group can be reset at once
    assert groups.members(settings, own_group(settings, "archive"))[1] == []

    with ArchiveReader(default_root(settings)) as reader:
        entries = list(reader.entries())
        verified, problems = reader.verify()
        ids = [e.event_id for e in entries]
        assert len(ids) == len(set(ids)) == len(stream) - 2
        assert set(ids) == {e["event_id"] for e in stream}
        assert problems == []
        assert verified == len(ids)
        # every event reads back as it was produced (v1 ones as the newest schema reads them)
        by_id = {e["event_id"]: e for e in stream}
        for entry in entries[::97]:
            original = by_id[entry.event_id]
            assert reader.event(entry) == codec.decode(codec.encode(original))
        assert len({e.segment.split("/")[3] for e in entries}) == 2  # two publish dates


def _start_of(chunk: int):
    return T0 + timedelta(hours=20) + chunk * timedelta(minutes=67)
