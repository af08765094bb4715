"""Producer figures: Avro encode/decode of the fixture story, and durable publishing of ~6 KB
articles to a real broker, with Apache Kafka's own ProducerPerformance as the ceiling.

Run: ``.venv/bin/python -m bench.produce [--events 20000] [--codec-rounds 20000]``. Prints figures only.

* encode/decode: the fixture story (deploy/demo/tml-idlib-page.html → producers.html_page →
  build_event), single-object encoding with the newest schema, µs per event.
* newswire producer: ``bus.producer`` (acks=all, idempotent, linger 5 ms) sending generated
  ~6 KB articles through ``bus.send_event`` (Avro encoding included) as fast as it can, then
  flushing; events/s over the whole run; ack latency = from ``send()`` to the future's callback
  (open loop, like ProducerPerformance with --throughput -1: it includes the time queued in the
  producer's buffer). Then single sends one at a time: the latency one request sees.
* ceiling: ``org.apache.kafka.tools.ProducerPerformance`` (kafka-tools 4.3.1, Java client) on the
  same broker, a topic with the same partitions, records of the same mean size, acks=all.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable


from bench.harness import bench_settings, peak_rss_mib, percentile, print_table, progress, temporary_broker
from newswire import broker as local_broker
from newswire import bus, codec, corpus, topics
from newswire.config import Settings
from newswire.producers.article import build_event
from newswire.producers.html_page import article_from_html

UNLOADED = 500  # sequential sends measured after the flood
PAGE = Path(__file__).resolve().parent.parent / "deploy" / "demo" / "tml-idlib-page.html"
SUMMARY = re.compile(
    r"(?P<records>\d+) records sent, (?P<rate>[\d.]+) records/sec \((?P<mb>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency, (?P<p50>\d+) ms 50th, "
    r"(?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th, (?P<p999>\d+) ms 99.9th")


def per_call_micros(work: Callable[[], object], rounds: int) -> float:
    start = time.perf_counter()
    for _ in range(rounds):
        work()
    return (time.perf_counter() - start) / rounds * 1e6


def preparation_micros(rounds: int) -> tuple[float, float]:
    """(µs to extract the fixture page into an article document, µs to validate and clean it)."""
    page = PAGE.read_bytes()
    document = article_from_html(page)
    settings = Settings()
    return (per_call_micros(lambda: article_from_html(page), rounds),
            per_call_micros(lambda: build_event(document, settings), rounds))


def codec_micros(rounds: int) -> tuple[float, float, int]:
    """(encode µs, decode µs, payload bytes) per event for the fixture story."""
    event = build_event(article_from_html(PAGE.read_bytes()), Settings())
    payload = codec.encode(event)
    return (per_call_micros(lambda: codec.encode(event), rounds),
            per_call_micros(lambda: codec.decode(payload), rounds), len(payload))


def newswire_producer(settings: Settings, n: int) -> dict[str, float]:
    """events/s and ack latencies (ms) of the durable producer for ``n`` generated ~6 KB articles."""
    events = list(corpus.stream(n, seed=3, body_bytes=6000, versions=False))
    sizes = [len(codec.encode(e)) for e in events[:500]]
    kafka = bus.producer(settings)
    latencies: list[float] = []
    failures: list[BaseException] = []
    try:
        bus.publish_events(settings, kafka, events[:50])  # connect and fetch metadata before timing
        start = time.perf_counter()
        for event in progress(events, desc="newswire producer", unit="event", leave=False):
            sent = time.perf_counter()
            future = bus.send_event(kafka, settings.topics.articles, event)
            future.add_callback(lambda _md, sent=sent: latencies.append((time.perf_counter() - sent) * 1000))
            future.add_errback(failures.append)
        kafka.flush(timeout=120)
        elapsed = time.perf_counter() - start
        one_by_one = []  # what one CMS request waits for: a single send on an idle producer
        for event in events[:UNLOADED]:
            sent = time.perf_counter()
            bus.send_event(kafka, settings.topics.articles, event).get(timeout=30)
            one_by_one.append((time.perf_counter() - sent) * 1000)
    finally:
        kafka.close(timeout=30)
    if failures or len(latencies) != n:
        raise RuntimeError(f"{len(failures)} sends failed, {len(latencies)} of {n} acknowledged: {failures[:1]}")
    return {"rate": n / elapsed, "p50": percentile(latencies, 50), "p99": percentile(latencies, 99),
            "mean_bytes": sum(sizes) / len(sizes), "single_p50": percentile(one_by_one, 50),
            "single_p99": percentile(one_by_one, 99)}


def kafka_producer_performance(settings: Settings, n: int, record_size: int) -> dict[str, float]:
    """Apache Kafka's ProducerPerformance on a topic like the articles topic; its summary figures."""
    topic = f"{settings.topics.articles}-perf"
    topics.ensure(settings, [topics.TopicSpec(topic, settings.topics.articles_partitions)])
    libs = local_broker.ensure_jars(settings.cache)
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("java is needed for ProducerPerformance")
    result = subprocess.run(
        [java, "-Xmx512m", "-cp", f"{libs}/*", "org.apache.kafka.tools.ProducerPerformance",
         "--topic", topic, "--num-records", str(n), "--record-size", str(record_size), "--throughput", "-1",
         "--producer-props", f"bootstrap.servers={settings.bootstrap_servers}", "acks=all",
         "enable.idempotence=true", "linger.ms=5"],
        capture_output=True, text=True, timeout=600)
    match = SUMMARY.search(result.stdout)
    if result.returncode != 0 or match is None:
        raise RuntimeError(f"ProducerPerformance failed ({result.returncode}):\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return {k: float(v) for k, v in match.groupdict().items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--codec-rounds", type=int, default=20_000)
    args = parser.parse_args()

    encode_us, decode_us, fixture_bytes = codec_micros(args.codec_rounds)
    extract_us, validate_us = preparation_micros(max(1, args.codec_rounds // 100))
    with temporary_broker() as broker, tempfile.TemporaryDirectory(prefix="newswire-bench-home-") as home:
        # open-loop flooding queues thousands of records: give them longer than the 2 x 15 s
        # delivery timeout of an interactive publish before they count as failed
        settings = replace(bench_settings(broker, Path(home)), producer_timeout_s=120.0)
        ours = newswire_producer(settings, args.events)
        ceiling = kafka_producer_performance(settings, args.events, round(ours["mean_bytes"]))

    record = f"{ours['mean_bytes'] / 1024:.1f} KiB records"
    print_table(f"bench.produce: {args.events} events, acks=all, idempotent, 6 partitions, one local broker", [
        ("HTML page → article document, fixture", f"{extract_us / 1000:.1f} ms/page", "trafilatura + rules"),
        ("validate + clean (build_event), fixture", f"{validate_us:.0f} µs/article", "nh3 body sanitising included"),
        ("Avro encode, fixture story", f"{encode_us:.1f} µs/event", f"{fixture_bytes} bytes single-object"),
        ("Avro decode, fixture story", f"{decode_us:.1f} µs/event", "schema resolution to the newest reader"),
        ("producer throughput", f"{ours['rate']:,.0f} events/s",
         f"Kafka ProducerPerformance {ceiling['rate']:,.0f} records/s ({ceiling['mb']:.1f} MB/s)"),
        ("ack latency p50", f"{ours['p50']:.1f} ms", f"ProducerPerformance {ceiling['p50']:.0f} ms"),
        ("ack latency p99", f"{ours['p99']:.1f} ms", f"ProducerPerformance {ceiling['p99']:.0f} ms"),
        (f"single send → ack, idle (p50 / p99 of {UNLOADED})", f"{ours['single_p50']:.1f} / {ours['single_p99']:.1f} ms",
         "what one ingest API request waits for Kafka"),
        ("record size", record, f"ProducerPerformance --record-size {round(ours['mean_bytes'])}"),
        ("peak RSS (this process)", f"{peak_rss_mib():.0f} MiB", f"holds the {args.events} generated events"),
    ])


if __name__ == "__main__":
    main()
