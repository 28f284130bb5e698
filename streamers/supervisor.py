"""The supervisor (the seed design's CollectorManager): one process per stream, restarted with
exponential backoff when it dies, enabled, disabled and re-symboled at run time, and its status
written to the shared state (proj.state) where `python -m proj streamers ...` reads it.

Control goes through the shared state as well: the CLI pushes a command, the supervisor
applies it within half a second and writes a reply. Redis (COLLECTOR_REDIS_URL) makes that
work from any machine; without it, files under the data folder serve one machine.
"""
from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
import time
import uuid

from proj import settings
from proj.state import open_state

from .connection import backoff_delay

log = logging.getLogger("collector.streamers")

STATUS_KEY = "streamers"
COMMANDS = "supervisor"
STALE_AFTER = 10.0   # seconds without a status write before a streamer's heartbeat is late
STABLE_AFTER = 60.0  # a process up this long has recovered: its backoff starts afresh
HUNG_AFTER = 60.0    # a live process silent this long is killed (and so restarted)


def _silence_limit(configured) -> float:
    """The longest silence a stream allows (its per-type limits' largest)."""
    if isinstance(configured, dict):
        return float(max(configured.values(), default=settings.max_silence()))
    return float(configured or settings.max_silence())


def batch_sender(exchange: str, task: str = "collector.ingest", queue: str | None = None):
    """send(frames): one task per batch, sent with ignore_result: nobody waits for an ingest
    result, and without it the result backend would subscribe this process to every task's
    result channel (a Redis SUBSCRIBE a batch, never undone)."""
    from proj.celery import app
    options = {"ignore_result": True, **({"queue": queue} if queue else {})}

    def send(frames):
        app.send_task(task, args=[exchange, frames], **options)

    return send


def run_streamer(config: dict) -> None:
    """Entry point of a streamer process: frames go to the workers as collector.ingest tasks."""
    from .connection import Streamer

    from proj.logs import configure
    configure(f"streamer-{config['name']}")
    state = open_state()
    exchange = config["exchange"]
    send = batch_sender(exchange)
    streamer = Streamer(exchange, config["symbols"], config["types"], send, name=config["name"],
                        ws_url=config.get("ws_url"), max_silence=config.get("max_silence"),
                        batch_size=config.get("batch_size", 100), batch_ms=config.get("batch_ms", 10),
                        on_stats=lambda snapshot: state.put(f"streamer:{config['name']}", snapshot))
    signal.signal(signal.SIGTERM, lambda *_: streamer.stop())
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the supervisor's to handle
    streamer.run()


class ManagedStreamer:
    def __init__(self, config: dict):
        self.config = dict(config)
        self.should_be_running = bool(config.get("enabled", True))
        self.auto_restart = True
        self.process: multiprocessing.Process | None = None
        self.status = "stopped" if self.should_be_running else "disabled"
        self.restarts = 0
        self.failures_in_a_row = 0
        self.started_at: float | None = None
        self.next_start_at = 0.0
        self.last_restart_time: float | None = None
        self.last_exit: str | None = None

    @property
    def name(self) -> str:
        return self.config["name"]

    def is_alive(self) -> bool:
        return self.process is not None and self.process.is_alive()


class Supervisor:
    def __init__(self, streams: list[dict], state=None):
        self.streamers = {s["name"]: ManagedStreamer(s) for s in streams}
        self.state = state or open_state()
        self.context = multiprocessing.get_context("spawn")   # no inherited sockets or locks
        self.started = time.time()
        self._stopping = threading.Event()

    # ---- the loop -------------------------------------------------------------------------
    def run(self) -> None:
        log.info("supervisor: %d streams (%s)", len(self.streamers), ", ".join(self.streamers))
        try:
            while not self._stopping.is_set():
                try:
                    self.tick()
                except Exception as exc:   # the shared state (Redis) is away: streaming goes on
                    log.error("supervisor: status or control unavailable: %s", exc)
                self._stopping.wait(0.5)
        finally:
            self._stop_all()
            try:
                self.publish_status(running=False)
            except Exception as exc:
                log.error("supervisor: final status not written: %s", exc)

    def stop(self) -> None:
        self._stopping.set()

    def tick(self) -> None:
        now = time.time()
        for streamer in self.streamers.values():
            self._tend(streamer, now)
        for command in self.state.pop_commands(COMMANDS):
            if command.get("expires", float("inf")) < time.time():
                log.warning("supervisor: ignoring an expired command: %s", command)
                continue
            self.apply(command)
        self.publish_status()

    def _stop_all(self) -> None:
        """SIGTERM to every streamer at once, then wait: each flushes its frames in parallel."""
        running = [s for s in self.streamers.values() if s.is_alive()]
        for streamer in running:
            streamer.process.terminate()
        deadline = time.monotonic() + 15
        for streamer in running:
            streamer.process.join(max(0.1, deadline - time.monotonic()))
            self._stop_process(streamer)

    def _tend(self, streamer: ManagedStreamer, now: float) -> None:
        if not streamer.should_be_running:
            if streamer.is_alive():
                self._stop_process(streamer)
            streamer.status = "disabled"
            return
        if streamer.is_alive():
            streamer.status = "running"
            if streamer.started_at and now - streamer.started_at > STABLE_AFTER:
                streamer.failures_in_a_row = 0
            stats = self.state.get(f"streamer:{streamer.name}") or {}
            beat = max(stats.get("updated") or 0, streamer.started_at or 0)
            if now - beat > HUNG_AFTER:   # alive but no longer reporting: hung, not healthy
                log.error("supervisor: collector=%s has not reported for %.0fs; killing it", streamer.name,
                          now - beat)
                streamer.process.kill()
                streamer.process.join(5)
            return
        if streamer.process is not None:   # it died
            code = streamer.process.exitcode
            streamer.process = None
            streamer.last_exit = f"exit code {code}"
            streamer.failures_in_a_row += 1
            if streamer.failures_in_a_row > settings.max_reconnect_attempts():
                streamer.status = "failed"
                log.error("supervisor: %s died %d times in a row; it stays failed (enable or "
                          "restart it to try again)", streamer.name, streamer.failures_in_a_row)
                return
            if not streamer.auto_restart:
                streamer.status = "failed"
                log.error("supervisor: collector=%s died (%s); auto_restart is off", streamer.name, streamer.last_exit)
                return
            delay = backoff_delay(streamer.failures_in_a_row - 1, settings.reconnect_delay(),
                                  settings.reconnect_delay_cap())
            streamer.next_start_at = now + delay
            streamer.status = "restarting"
            log.warning("supervisor: collector=%s died (%s); restarting in %.2fs", streamer.name,
                        streamer.last_exit, delay)
        if streamer.status == "failed" or now < streamer.next_start_at:
            return
        restarting = streamer.status == "restarting"
        self._start_process(streamer)
        if restarting:
            streamer.restarts += 1
            streamer.last_restart_time = now

    def _start_process(self, streamer: ManagedStreamer) -> None:
        streamer.process = self.context.Process(target=run_streamer, args=(streamer.config,),
                                                name=f"streamer-{streamer.name}", daemon=True)
        streamer.process.start()
        streamer.started_at = time.time()
        streamer.status = "running"
        log.info("supervisor: collector=%s started (pid %s)", streamer.name, streamer.process.pid)

    def _stop_process(self, streamer: ManagedStreamer) -> None:
        process, streamer.process = streamer.process, None
        if process is None:
            return
        if process.is_alive():
            process.terminate()          # SIGTERM: the streamer flushes its batch and closes
            process.join(10)
            if process.is_alive():
                process.kill()
                process.join(5)
        streamer.status = "stopped"

    # ---- control --------------------------------------------------------------------------
    def apply(self, command: dict) -> dict:
        name, verb = command.get("name"), command.get("command")
        streamer = self.streamers.get(name)
        if streamer is None:
            reply = {"ok": False, "detail": f"no stream named {name!r} (have {', '.join(self.streamers)})"}
        elif verb == "enable":
            if streamer.status == "failed":
                self._stop_process(streamer)
            streamer.should_be_running, streamer.status, streamer.next_start_at = True, "stopped", 0
            streamer.failures_in_a_row = 0
            reply = {"ok": True, "detail": f"{name} enabled"}
        elif verb == "disable":
            streamer.should_be_running = False
            self._stop_process(streamer)
            streamer.status = "disabled"
            reply = {"ok": True, "detail": f"{name} disabled"}
        elif verb == "restart":
            streamer.failures_in_a_row = 0
            reply = self._restart(streamer, f"{name} restarted")
        elif verb == "fail":   # the health check gave up on it: down, and saying so
            self._stop_process(streamer)
            streamer.status = "failed"
            reply = {"ok": True, "detail": f"{name} marked failed (enable or restart to retry)"}
        elif verb in ("add_symbol", "remove_symbol"):
            symbol = (command.get("symbol") or "").upper()
            symbols = streamer.config["symbols"]
            if verb == "add_symbol" and symbol not in symbols:
                symbols.append(symbol)
            elif verb == "remove_symbol" and symbol in symbols and len(symbols) > 1:
                symbols.remove(symbol)
            else:
                return self._reply(command, {"ok": False, "detail": f"{name}: nothing to do for {symbol}"})
            reply = self._restart(streamer, f"{name} now streams {', '.join(symbols)}")
        else:
            reply = {"ok": False, "detail": f"unknown command {verb!r}"}
        log.info("supervisor: command=%s collector=%s: %s", verb, name, reply["detail"])
        return self._reply(command, reply)

    def _restart(self, streamer: ManagedStreamer, detail: str) -> dict:
        self._stop_process(streamer)
        if streamer.should_be_running:
            self._start_process(streamer)
            streamer.restarts += 1
            streamer.last_restart_time = time.time()
        return {"ok": True, "detail": detail}

    def _reply(self, command: dict, reply: dict) -> dict:
        if command.get("id"):
            self.state.put(f"reply:{command['id']}", reply)
        return reply

    # ---- status ---------------------------------------------------------------------------
    def get_status(self, name: str) -> dict:
        streamer = self.streamers[name]
        stats = self.state.get(f"streamer:{name}") or {}
        now = time.time()
        last_data = stats.get("last_message_time")
        heartbeat = stats.get("updated") if streamer.is_alive() else None
        return {
            "name": name,
            "exchange": streamer.config["exchange"],
            "status": streamer.status,
            "should_be_running": streamer.should_be_running,
            "symbols": list(streamer.config["symbols"]),
            "data_types": list(streamer.config["types"]),
            "auto_restart": streamer.auto_restart,
            "pid": streamer.process.pid if streamer.is_alive() else None,
            "health": {
                "time_since_heartbeat": round(now - heartbeat, 3) if heartbeat else None,
                "time_since_data": round(now - last_data, 3) if last_data else None,
                "max_silence_duration": _silence_limit(streamer.config.get("max_silence")),
                "time_since_exchange_heartbeat": (round(now - stats["last_heartbeat"], 3)
                                                  if stats.get("last_heartbeat") else None),
            },
            "statistics": {
                "messages_received": stats.get("messages_received", 0),
                "messages_processed": stats.get("messages_processed", 0),
                "errors": stats.get("errors", 0),
                "restarts": streamer.restarts,
                "uptime_seconds": round(now - streamer.started_at, 3) if streamer.is_alive() else 0.0,
                "reconnect_attempts": stats.get("reconnect_attempts", 0),
                "last_message_time": last_data,
                "connection_uptime": stats.get("connection_uptime", 0.0),
                "last_error": stats.get("last_error") or streamer.last_exit,
                "last_restart_time": streamer.last_restart_time,
            },
        }

    def get_health_status(self, name: str) -> dict:
        status = self.get_status(name)
        health, issues = status["health"], []
        running = status["status"] == "running"
        if status["should_be_running"] and not running:
            issues.append(f"should be running but is {status['status']}")
        if running and (health["time_since_heartbeat"] is None or health["time_since_heartbeat"] > STALE_AFTER):
            issues.append("no heartbeat from the streamer process")
        if running and (health["time_since_data"] is None
                        or health["time_since_data"] > health["max_silence_duration"]):
            issues.append("no data within the silence limit")
        stats = status["statistics"]
        return {
            "is_healthy": not issues and status["should_be_running"],
            "issues": issues,
            "last_heartbeat": time.time() - health["time_since_heartbeat"] if health["time_since_heartbeat"] is not None else None,
            "last_data_received": stats["last_message_time"],
            "is_running": running,
        }

    def publish_status(self, running: bool = True) -> None:
        collectors = {}
        for name in self.streamers:
            collectors[name] = self.get_status(name)
            collectors[name]["health_status"] = self.get_health_status(name)
        self.state.put(STATUS_KEY, {"updated": time.time(), "supervisor_running": running,
                                    "started": self.started, "collectors": collectors})


# ---- what the CLI uses ----------------------------------------------------------------------
def send_command(command: str, name: str, symbol: str | None = None, wait: float = 15.0,
                 state=None, expires_in: float | None = None) -> dict:
    """Ask the running supervisor; its reply, or a timeout error if none answered in `wait`
    seconds (wait=0: do not wait). The command expires after `expires_in` (default `wait`)."""
    state = state or open_state()
    command_id = uuid.uuid4().hex
    # a command nobody answers in time must not run whenever a supervisor next starts
    state.push_command(COMMANDS, {"id": command_id if wait else None, "command": command,
                                  "name": name, "symbol": symbol,
                                  "expires": time.time() + (expires_in or wait or 30)})
    if not wait:
        return {"ok": True, "detail": f"{command} {name}: sent"}
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        reply = state.get(f"reply:{command_id}")
        if reply is not None:
            state.delete(f"reply:{command_id}")
            return reply
        time.sleep(0.1)
    return {"ok": False, "detail": f"no supervisor answered within {wait:g}s (is `python -m streamers` running?)"}


def read_status(state=None) -> dict | None:
    return (state or open_state()).get(STATUS_KEY)
