"""polls: how many beat-style polls per second the full chain (collector.poll -> fetch ->
validate -> publish into PostgreSQL) sustains on this machine with none expired, the simulator
answering; beside the same offered rates of a no-op chain of the same shape
(bench.floor.noop_poll: same queues, same `expires`, nothing done in any step), i.e. Celery's
and RabbitMQ's own ceiling here, measured in the same run.

Polls go out as beat sends them (celeryconfig's beat schedule): `collector.poll` on the `poll`
queue, args (exchange, type, symbol), `expires` = the poll's interval, here INTERVAL = 1 s, so
a poll (or its fetch) still queued one interval after it was sent is dropped. Bitstamp
tickers, round robin over the simulator's pairs. At each offered rate polls go out evenly for
`seconds`; the rate is sustained when every poll's chain published (its publish task's result
is in the result backend), none expired, none erred, and the polls sent last finished within
half an interval (the queues are not filling up). The ladder doubles from 25/s until a rate is
not sustained, then bisects between the last two rungs; the figure is the highest sustained.
In full mode a rate of the two main ladders must fail twice to count as failed.

The worker is the product's default: prefork, concurrency 2, all queues, started with
`-A bench.floor` so that it knows the no-op tasks too; it stores into a throwaway PostgreSQL
schema (search_path in the database URL), dropped afterwards. Bitstamp's budget (130 / 10 s) is
raised with the documented COLLECTOR_BITSTAMP_RATE_LIMIT, over a 1 s window, because the
shared window's cost in Redis grows with the requests it holds (the "rate window" row measures
that). The simulator runs in a process of its own so that serving HTTP does not share the
sending process's GIL. Everything runs on its own RabbitMQ vhost (harness.use_own_vhost), so
that other benchmarks' purges and workers stay out. Each step records the CPU per poll of every
process involved, and how much of the machine other work took meanwhile ("elsewhere": this is
a CPU-bound figure, and a busy machine lowers it).

Full mode adds: the poll queue on a threads-pool worker (concurrency 8; fetch and validate
are I/O-bound) beside a prefork one (concurrency 2) for publish; and a one-task no-op poll
(bench.floor.noop_single), the ceiling of a poll that is one Celery task instead of four.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime

import orjson
import redis

from .harness import ROOT, SERVICES, Worker, figure, percentile, use_own_vhost, use_real_services

INTERVAL = 1.0                       # the polls' interval; beat sends expires = interval
REDIS_URL = "redis://127.0.0.1:6379/11"   # this benchmark's shared state, rate window, fan-out
RATE_BUDGET = "1000000/1"            # COLLECTOR_BITSTAMP_RATE_LIMIT: never the limit here
FIRST_RATE = 25
DRAIN_GRACE = 2.0                    # past the last poll's deadline, how long its chain may take
META = "celery-task-meta-"           # the Redis result backend's keys
SCHEMA = "bench_polls"               # a throwaway PostgreSQL schema for the tickers
SERVICES_BY_COMM = {"rabbitmq": "beam.smp", "redis": "redis-server", "postgresql": "postgres"}


# ---- processes ---------------------------------------------------------------------------------
def _start_simulator() -> tuple[subprocess.Popen, str]:
    code = ("import threading\n"
            "from proj.sim import Simulator\n"
            "sim = Simulator(port=0).start()\n"
            "print(sim.url, flush=True)\n"
            "threading.Event().wait()\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True, start_new_session=True)
    url = proc.stdout.readline().strip()
    if not url:
        proc.kill()
        raise RuntimeError("simulator did not start")
    return proc, url


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _children(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return found


def _cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_snapshot(groups: dict[str, int]) -> dict[str, dict[int, float]]:
    """CPU seconds so far, per process, of each named process tree, of the machine's services,
    and of the whole machine (busy time of all CPUs, "machine": {0: seconds})."""
    snapshot = {name: {p: _cpu(p) for p in [pid] + (_children(pid) if pid != os.getpid() else [])}
                for name, pid in groups.items()}   # this process's children are groups of their own
    comms = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    comms[int(entry)] = f.read().strip()
            except OSError:
                pass
    for name, comm in SERVICES_BY_COMM.items():
        snapshot[name] = {pid: _cpu(pid) for pid, c in comms.items() if c == comm}
    with open("/proc/stat") as f:
        ticks = [int(t) for t in f.readline().split()[1:9]]
    idle = ticks[3] + ticks[4]   # idle, iowait
    snapshot["machine"] = {0: (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")}
    return snapshot


def _cpu_spent(before: dict, after: dict) -> dict[str, float]:
    """Per named group, CPU seconds between two snapshots (a process that came and went in
    between is not seen); "elsewhere": the machine's busy time no group explains, i.e.
    whatever else runs on it meanwhile (other benchmarks, tests): it skews the step."""
    spent = {name: sum(max(0.0, seconds - before[name].get(pid, 0.0))
                       for pid, seconds in after[name].items())
             for name in after}
    spent["elsewhere"] = spent.pop("machine") - sum(spent.values())
    return spent


def _queue_depth(app, queues=("poll", "publish")) -> int:
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        return sum(channel.queue_declare(queue=q, passive=True).message_count for q in queues)


def _schema():
    """An autocommit connection, after (re)creating the benchmark's schema."""
    import psycopg2
    admin = psycopg2.connect(SERVICES["COLLECTOR_DATABASE_URL"])
    admin.autocommit = True
    admin.cursor().execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}")
    return admin


def _await_workers(app, count: int) -> None:
    """Worker.__enter__ returns when one worker answers; with two, wait for both."""
    deadline = time.monotonic() + 60
    while len(app.control.ping(timeout=0.5) or []) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"fewer than {count} workers answer")


# ---- one offered rate --------------------------------------------------------------------------
def _offer(app, task: str, rate: float, seconds: float, symbols: list[str],
           chained: bool = True) -> dict:
    """Send `rate` polls a second for `seconds`, evenly, as beat does; then read from the
    result backend what became of each one."""
    results = redis.Redis.from_url(SERVICES["COLLECTOR_RESULT_BACKEND"])
    count = max(1, round(rate * seconds))
    sent: dict[str, float] = {}
    with app.producer_or_acquire() as producer:
        started, cpu_started = time.monotonic(), time.process_time()
        for i in range(count):
            pause = started + i / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            task_id = uuid.uuid4().hex
            sent[task_id] = time.time()
            app.send_task(task, args=("bitstamp", "ticker", symbols[i % len(symbols)]), kwargs={},
                          expires=INTERVAL, task_id=task_id, producer=producer)
        sending = time.monotonic() - started
        sender_cpu = time.process_time() - cpu_started   # what beat spends sending them
    # A poll ends REVOKED (expired) or SUCCESS (its chain's id); a chain whose fetch ran ends
    # in a publish result. Past the last deadline plus a grace, nothing more can come.
    deadline = time.monotonic() + INTERVAL + DRAIN_GRACE
    polls: dict[str, dict] = {}
    outcomes: dict[str, dict] = {}   # poll id -> its publish task's result
    while True:
        waiting = [i for i in sent if i not in polls]
        for task_id, raw in zip(waiting, results.mget([META + i for i in waiting]) if waiting else []):
            if raw is not None:
                polls[task_id] = orjson.loads(raw)
                if not chained and polls[task_id]["status"] == "SUCCESS":
                    outcomes[task_id] = polls[task_id]
        pending = [i for i, p in polls.items() if p["status"] == "SUCCESS" and i not in outcomes]
        for task_id, raw in zip(pending, results.mget([META + polls[i]["result"] for i in pending])
                                if pending else []):
            if raw is not None:
                outcomes[task_id] = orjson.loads(raw)
        if len(polls) == len(sent) and len(outcomes) == len(polls) - _expired(polls):
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    drained_by = time.monotonic() + 120
    while _queue_depth(app):   # the next step starts on empty queues
        if time.monotonic() > drained_by:
            raise RuntimeError("the worker does not drain its queues (see its log)")
        time.sleep(0.1)
    keys = [META + i for i in sent] + [META + p["result"] for p in polls.values()
                                        if chained and p["status"] == "SUCCESS"]
    for start in range(0, len(keys), 1000):
        results.delete(*keys[start:start + 1000])

    latencies, errors = {}, 0
    for task_id, outcome in outcomes.items():
        result = outcome.get("result")
        if outcome["status"] == "SUCCESS" and not (isinstance(result, dict) and "err" in result):
            latencies[task_id] = datetime.fromisoformat(outcome["date_done"]).timestamp() - sent[task_id]
        else:
            errors += 1
    expired = _expired(polls)
    ran = sum(1 for p in polls.values() if p["status"] == "SUCCESS")
    # the polls sent last: has a backlog built up?
    last = [latencies[i] for i in list(sent)[-max(1, count // 10):] if i in latencies]
    tail_ms = statistics.median(last) * 1000 if last else None
    ordered = list(latencies.values())
    sustained = (len(latencies) == count and not errors and tail_ms is not None
                 and tail_ms <= INTERVAL * 1000 / 2)
    return {"rate": rate, "sent": count, "send_s": round(sending, 2), "published": len(latencies),
            # ran, but its chain never reached publish: the fetch expired in its queue (or
            # raised: the worker's log says)
            "poll_expired": expired, "dropped_before_publish": ran - len(outcomes),
            "errors": errors, "unaccounted": count - len(polls),
            "sender_cpu_ms_per_poll": round(sender_cpu * 1000 / count, 2),
            "p50_ms": round(statistics.median(ordered) * 1000, 1) if ordered else None,
            "p99_ms": round(percentile(ordered, 99) * 1000, 1) if ordered else None,
            "last_tenth_p50_ms": round(tail_ms, 1) if tail_ms is not None else None,
            "sustained": sustained}


def _expired(polls: dict) -> int:
    return sum(1 for p in polls.values() if p["status"] == "REVOKED")


def _ladder(app, task: str, seconds: float, symbols: list[str], groups: dict[str, int],
            refine: int, attempts: int = 1, chained: bool = True) -> tuple[float, list[dict]]:
    """Double the rate from FIRST_RATE until one is not sustained, then bisect `refine` times
    between the last two rungs; the highest sustained rate and every step. A rate that fails
    is offered up to `attempts` times before it counts as failed: one stall of a shared
    machine is not a ceiling."""
    def sustained(rate: float) -> bool:
        for _ in range(attempts):
            before, started = _cpu_snapshot(groups), time.monotonic()
            result = _offer(app, task, rate, seconds, symbols, chained)
            spent = _cpu_spent(before, _cpu_snapshot(groups))
            result["cpu_ms_per_poll"] = {name: round(cpu * 1000 / result["sent"], 2)
                                         for name, cpu in spent.items()}
            result["machine_cpu_used_elsewhere_pct"] = round(
                100 * spent["elsewhere"] / ((time.monotonic() - started) * os.cpu_count()))
            steps.append(result)
            if result["sustained"]:
                return True
        return False

    steps: list[dict] = []
    _offer(app, task, 10, 1.0, symbols, chained)   # warm-up: pool children, connections, caches
    best, failed = 0.0, None
    rate = FIRST_RATE
    while failed is None:
        if sustained(rate):
            best, rate = rate, rate * 2
        else:
            failed = rate
    for _ in range(refine):
        middle = round((best + failed) / 2)
        if middle in (best, failed):
            break
        if sustained(middle):
            best = middle
        else:
            failed = middle
    return best, steps


def _best(steps: list[dict], rate: float) -> dict:
    return next((s for s in steps if s["rate"] == rate), {})


# ---- the rate window ---------------------------------------------------------------------------
def _rate_window_cost(held: int, calls: int = 200) -> float:
    """Milliseconds per acquire of the shared Redis window (proj.ratelimit) holding `held`
    requests: what every fetch pays before its request."""
    from proj import ratelimit
    window = ratelimit.RedisWindow(REDIS_URL)
    name = "bench_window"
    window.reset(name)
    now = time.time()
    if held:
        window.redis.zadd(f"collector:ratelimit:{name}",
                          {f"{uuid.uuid4().hex[:12]}:1": now - i / held for i in range(held)})
    budget = (10 ** 9, 10.0)
    started = time.perf_counter()
    for _ in range(calls):
        window.try_acquire(name, budget, 1)
    elapsed = time.perf_counter() - started
    window.reset(name)
    return elapsed * 1000 / calls


# ---- the benchmark -----------------------------------------------------------------------------
def _row(what: str, rate: float, floor: float, floor_what: str, steps: list[dict], **extra) -> dict:
    return figure(what, rate, "polls/s", floor_what, floor, target="≥ 500/s, none expired",
                  met=rate >= 500, at_best=_best(steps, rate), steps=steps,
                  # how much of the machine other work took while this ran (it skews the figure)
                  machine_cpu_used_elsewhere_max_pct=max(s["machine_cpu_used_elsewhere_pct"]
                                                         for s in steps), **extra)


def run(quick: bool = False) -> dict:
    use_real_services()
    use_own_vhost("bench_polls")
    os.environ["COLLECTOR_REDIS_URL"] = REDIS_URL   # as deployed: state, rate window, fan-out in Redis
    from proj.celery import app
    from proj.sim.bitstamp import PAIRS

    # the floor and the product's setup get a finer ladder and a second chance at a failed rate
    seconds, refine, attempts = (2.0, 1, 1) if quick else (5.0, 2, 2)
    symbols = [p.name for p in PAIRS]
    redis.Redis.from_url(REDIS_URL).flushdb()   # this benchmark's own database
    admin = _schema()
    simulator, url = _start_simulator()
    base = SERVICES["COLLECTOR_DATABASE_URL"]
    worker_env = {"COLLECTOR_BITSTAMP_REST_URL": url, "COLLECTOR_BITSTAMP_RATE_LIMIT": RATE_BUDGET,
                  "COLLECTOR_DATABASE_URL": f"{base}{'&' if '?' in base else '?'}"
                                            f"options=-csearch_path%3D{SCHEMA}"}
    floor_what = "no-op 3-step chain, prefork 2, same queues and expires"
    rows = []
    try:
        with Worker(env=worker_env, app="bench.floor") as worker:
            groups = {"worker": worker.proc.pid, "simulator": simulator.pid,
                      "this_process": os.getpid()}
            floor, floor_steps = _ladder(app, "bench.noop_poll", seconds, symbols, groups, refine,
                                         attempts)
            polls, poll_steps = _ladder(app, "collector.poll", seconds, symbols, groups, refine,
                                        attempts)
            if not quick:   # the same worker, a poll that is one no-op task: one Celery hop
                single, single_steps = _ladder(app, "bench.noop_single", seconds, symbols, groups,
                                               1, chained=False)
        extra = {} if quick else {"one_task_noop_polls_per_s": single,
                                  "one_task_noop_at_best": _best(single_steps, single),
                                  "one_task_noop_steps": single_steps}
        rows.append(_row("polls/s sustained, prefork 2 (product default)", polls, floor,
                         floor_what, poll_steps, floor_at_best=_best(floor_steps, floor),
                         floor_steps=floor_steps, **extra))
        if not quick:
            # fetch and validate wait on HTTP: the poll queue on threads, publish on prefork
            # (publish stays in processes: proj.publish keeps one store per process)
            with Worker(queues="celery,publish,ingest", env=worker_env, app="bench.floor") as main, \
                    Worker(queues="poll", pool="threads", concurrency=8, env=worker_env,
                           app="bench.floor") as threads:
                _await_workers(app, 2)
                groups = {"worker": main.proc.pid, "threads_worker": threads.proc.pid,
                          "simulator": simulator.pid, "this_process": os.getpid()}
                threaded, steps = _ladder(app, "collector.poll", seconds, symbols, groups, 1)
            rows.append(_row("polls/s sustained, poll queue on threads 8 + publish on prefork 2",
                             threaded, floor, floor_what, steps))
    finally:
        _stop(simulator)
        admin.cursor().execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        admin.close()
    held = 500 * 10   # 500 polls/s in a 10 s window, Bitstamp's
    rows.append(figure(f"rate window acquire, {held} requests held (500/s x 10 s)",
                       _rate_window_cost(held), "ms", "same, empty window", _rate_window_cost(0)))
    setups = ("collector.poll, prefork 2", "collector.poll, poll queue on threads")
    notes = [_cpu_note(f"{setup}, at {row['value']:g}/s", row["at_best"])
             for setup, row in zip(setups, [r for r in rows if "at_best" in r])]
    notes.append(_cpu_note(f"no-op chain, at {floor:g}/s", _best(floor_steps, floor)))
    if not quick:
        notes.append(f"a poll as one no-op task (one Celery hop, not four): {single:g}/s sustained")
    return {"name": "polls", "runs": 1, "unit": "polls/s", "rows": rows, "notes": notes}


def _cpu_note(what: str, step: dict) -> str:
    if not step:
        return f"CPU ms per poll, {what}: no rate was sustained"
    cpu = step["cpu_ms_per_poll"]
    parts = ", ".join(f"{name} {ms:g}" for name, ms in cpu.items() if name != "this_process")
    return (f"CPU ms per poll, {what}: {parts}, sender (beat's part) "
            f"{step['sender_cpu_ms_per_poll']:g}")
