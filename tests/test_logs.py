"""Logs: one line per event on stderr and, when configured, in rotating files under a folder."""
import logging

from proj import logs


def test_rotating_files_and_cleanup(tmp_path, monkeypatch):
    monkeypatch.setenv("COLLECTOR_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("LOG_MAX_FILES", "2")
    monkeypatch.setenv("COLLECTOR_LOG_MAX_BYTES", "300")
    monkeypatch.setenv("LOG_CLEANUP", "true")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "worker.log.7").write_text("left from a larger LOG_MAX_FILES\n")
    logger = logging.getLogger("test-logs")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logs.add_file_handler(logger, "worker")
    try:
        for i in range(20):
            logger.warning("fetch failed err=timeout exchange=bitstamp symbol=BTC/USD attempt=%d", i)
    finally:
        for handler in logger.handlers:
            handler.close()
        logger.handlers.clear()
    names = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert names == ["worker.log", "worker.log.1", "worker.log.2"]   # LOG_MAX_FILES kept, .7 gone
    last = (tmp_path / "logs" / "worker.log").read_text().splitlines()[-1]
    assert "err=timeout exchange=bitstamp symbol=BTC/USD attempt=19" in last


def test_no_log_dir_means_stderr_only(monkeypatch):
    monkeypatch.delenv("COLLECTOR_LOG_DIR", raising=False)
    assert logs.file_handler("worker") is None
