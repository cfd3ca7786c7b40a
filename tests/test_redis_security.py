"""Redis with an ACL user and password, and with TLS, against real redis-servers started here;
secrets from files; and a known password that must never show in logs, dead letters or errors."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis
from redis_helpers import stream_alerts
from secure_redis import ConfiguredRedis, configured_redis

from config.runtime import RedisSettings
from connectors.redis_client import make_client

ROOT = Path(__file__).resolve().parents[1]
DEMO_FEED = ROOT / "sense_respond" / "data" / "demo_feed.jsonl"
USER = "sense"
PASSWORD = "Zq8-known-test-password-0xC0FFEE"
# The least the pipeline needs on its own keys and channels (the README lists it).
ACL = [
    "user default off",
    f"user {USER} on >{PASSWORD} ~sec:* &sec:* -@all +@read +@write +@stream +@pubsub"
    " +@scripting +@keyspace +ping +client +hello +info +time",
]
BAD_LINES = [b"{not json\n", b"[1]\n", b'{"id": "x", "kind": "post"}\n']


def _env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SR_")}
    return {**base, "SR_FLOW__EPOCH_INTERVAL_SECONDS": "0.2", **extra}


def sr(*args: str, stdin: bytes = b"", env: dict[str, str] | None = None, timeout: float = 180):
    return subprocess.run(
        [sys.executable, "-m", "sense_respond", *args],
        input=stdin,
        capture_output=True,
        timeout=timeout,
        env=env or _env(),
        check=False,
    )


def _demo_slice(n: int = 3000) -> bytes:
    return b"".join(DEMO_FEED.read_bytes().splitlines(keepends=True)[:n])


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConfiguredRedis]:
    with configured_redis(tmp_path_factory.mktemp("acl"), ACL) as server:
        yield server


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1, made with the openssl CLI."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make test certificates")
    d = tmp_path_factory.mktemp("certs")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run(
            [openssl, *args],
            cwd=d,
            check=True,
            capture_output=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )

    run(
        "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=sense-respond test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    run(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "ext.cnf",
    )  # fmt: skip
    return {"ca": d / "ca.crt", "cert": d / "server.crt", "key": d / "server.key"}


@pytest.fixture(scope="module")
def tls_redis(
    tmp_path_factory: pytest.TempPathFactory, certs: dict[str, Path]
) -> Iterator[ConfiguredRedis]:
    directives = [
        f"tls-cert-file {certs['cert']}",
        f"tls-key-file {certs['key']}",
        f"tls-ca-cert-file {certs['ca']}",
        "tls-auth-clients no",
        *ACL,
    ]
    with configured_redis(tmp_path_factory.mktemp("tls"), directives, tls=True) as server:
        yield server


def _acl_url(server: ConfiguredRedis, password: str = PASSWORD, scheme: str = "redis") -> str:
    return f"{scheme}://{USER}:{password}@127.0.0.1:{server.port}/0"


def _prefix() -> str:
    return f"sec:{time.monotonic_ns()}:"


# ---------------------------------------------------------------------------------------------
# ACL user and password


def test_acl_user_connects_and_others_are_refused(acl_redis: ConfiguredRedis) -> None:
    settings = RedisSettings(retries=0)
    good = make_client(_acl_url(acl_redis), settings)
    assert good.ping()
    assert good.set("sec:probe", b"1") and good.delete("sec:probe")
    with pytest.raises(redis.exceptions.NoPermissionError):
        good.set("other:key", b"1")  # the ACL confines it to its prefix
    good.close()
    for url in (_acl_url(acl_redis, "wrong"), f"redis://127.0.0.1:{acl_redis.port}/0"):
        client = make_client(url, settings)
        with pytest.raises((redis.AuthenticationError, redis.ResponseError)):
            client.set("k", "v")
        client.close()


# ---------------------------------------------------------------------------------------------
# TLS


def test_tls_client_verifies_the_server_with_the_ca(
    tls_redis: ConfiguredRedis, certs: dict[str, Path]
) -> None:
    url = _acl_url(tls_redis, scheme="rediss")
    client = make_client(url, RedisSettings(ssl_ca_certs=str(certs["ca"]), retries=0))
    assert client.ping()
    client.close()
    # Without our CA the server's certificate is not trusted: refused, not silently accepted.
    untrusted = make_client(url, RedisSettings(retries=0))
    with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
        untrusted.ping()
    untrusted.close()
    # Plain text to the TLS port gets nowhere.
    plain = make_client(_acl_url(tls_redis), RedisSettings(retries=0, socket_timeout_seconds=3))
    with pytest.raises(redis.ConnectionError):
        plain.ping()
    plain.close()


@pytest.mark.slow
def test_a_run_over_tls_delivers(tls_redis: ConfiguredRedis, certs: dict[str, Path]) -> None:
    prefix = _prefix()
    url = _acl_url(tls_redis, scheme="rediss")
    env = _env(SR_REDIS__URL=url, SR_REDIS__SSL_CA_CERTS=str(certs["ca"]))
    done = sr("run", "--input", "jsonl:-", "--prefix", prefix, stdin=_demo_slice(), env=env)
    assert done.returncode == 0, done.stderr
    client = make_client(url, RedisSettings(ssl_ca_certs=str(certs["ca"])))
    try:
        assert stream_alerts(client, prefix)
    finally:
        client.close()


def test_ca_certs_need_a_rediss_url(certs: dict[str, Path]) -> None:
    env = _env(SR_REDIS__URL="redis://127.0.0.1:1/0", SR_REDIS__SSL_CA_CERTS=str(certs["ca"]))
    done = sr("run", "--input", "jsonl:-", env=env)
    assert done.returncode == 2
    assert b"not rediss://" in done.stderr


# ---------------------------------------------------------------------------------------------
# secrets from files, and the password warning


# ---------------------------------------------------------------------------------------------
# the known password never leaks


def _assert_no_password(*blobs: bytes) -> None:
    for blob in blobs:
        assert PASSWORD.encode() not in blob
        assert PASSWORD.encode().hex().encode() not in blob


@pytest.mark.slow
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_the_password_never_leaks(
    acl_redis: ConfiguredRedis, tmp_path: Path, log_format: str
) -> None:
    url = _acl_url(acl_redis)
    prefix = _prefix()
    fmt = ("--log-format", log_format)
    # A whole run against the ACL Redis, its URL read from a file, with debug logging, bad
    # input, and alerts printed.
    secret = tmp_path / "redis-url"
    secret.write_text(url + "\n")
    secret.chmod(0o600)
    done = sr("-v", "run", *fmt, "--input", "jsonl:-", "--prefix", prefix, "--print-alerts",
              stdin=_demo_slice() + b"".join(BAD_LINES),
              env=_env(SR_REDIS__URL_FILE=str(secret)))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert b"redis://sense:***@127.0.0.1" in done.stderr
    assert b"`ps`" not in done.stderr  # no password on the command line, no warning
    client = make_client(url, RedisSettings())
    try:
        letters = client.xrange(f"{prefix}dlq")
        assert len(letters) == len(BAD_LINES)
        alerts = client.xrange(f"{prefix}alerts")
        assert alerts, "the run against the ACL Redis delivered no alert"
        stored = b"".join(v for _, fields in letters + alerts for v in fields.values())
    finally:
        client.close()
    # A Redis that does not answer.
    unreachable = sr("-v", "run", *fmt, "--input", "jsonl:-",
                     env=_env(SR_REDIS__URL=url.replace(str(acl_redis.port), "1")))  # fmt: skip
    assert unreachable.returncode == 2 and b"cannot use Redis" in unreachable.stderr
    outputs = [done.stdout, done.stderr, stored, unreachable.stderr]
    if log_format == "json":
        # One JSON object per line, debug records and status lines included (--log-format json).
        records = [orjson.loads(line) for line in done.stderr.splitlines()]
        assert all(r.keys() >= {"time", "level", "logger", "message"} for r in records)
        assert any(r["level"] == "DEBUG" for r in records)
        messages = " ".join(r["message"] for r in records)
        assert "input: jsonl:-" in messages and "summary:" in messages
        errors = [orjson.loads(line) for line in unreachable.stderr.splitlines()]
        assert errors[-1]["level"] == "ERROR" and "cannot use Redis" in errors[-1]["message"]
    else:
        # The password on the command line (warned about), a wrong password, and an unreadable
        # secret file.
        cli = sr("-v", "run", "--input", "jsonl:-", "--redis-url", url, "--prefix", prefix)
        assert cli.returncode == 0, cli.stderr
        assert b"can read in `ps`" in cli.stderr
        wrong = sr("-v", "run", "--input", "jsonl:-",
                   env=_env(SR_REDIS__URL=_acl_url(acl_redis, PASSWORD + "x")))  # fmt: skip
        assert wrong.returncode == 2
        missing = sr("run", "--input", "jsonl:-", env=_env(SR_REDIS__URL_FILE=str(tmp_path / "no")))
        assert missing.returncode == 2 and b"SR_REDIS__URL_FILE" in missing.stderr
        outputs += [cli.stdout, cli.stderr, wrong.stderr, missing.stderr]
    _assert_no_password(*outputs)


@pytest.mark.slow
def test_the_password_never_leaks_when_redis_goes_away_mid_run(tmp_path: Path) -> None:
    with configured_redis(tmp_path, ACL) as server:
        url = _acl_url(server)
        prefix = _prefix()
        env = _env(
            SR_REDIS__PREFIX=prefix,
            SR_REDIS__URL=url,
            SR_REDIS__RETRIES="1",
            SR_REDIS__OUTAGE_BUDGET_SECONDS="3",
            SR_FLOW__SOURCE_BATCH_SIZE="10",
        )
        log = tmp_path / "run.log"
        with open(log, "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "sense_respond", "-v", "run", "--input", "jsonl:-"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=env,
            )
        try:
            assert proc.stdin is not None
            # Wait until the flow runs: one batch of bad lines reached the dead-letter stream.
            # (distinct lines: dead letters of the same input share one id)
            proc.stdin.write(b"".join(b"{bad %d\n" % i for i in range(10)))
            proc.stdin.flush()
            client = make_client(url, RedisSettings())
            deadline = time.monotonic() + 120
            while client.xlen(f"{prefix}dlq") < 10 and time.monotonic() < deadline:
                time.sleep(0.2)
            client.close()
            server.stop()
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write(_demo_slice(1000) + b"".join(BAD_LINES))
                proc.stdin.close()
            code = proc.wait(timeout=240)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert code != 0  # the outage outlasted its budget: the run must not claim success
    output = log.read_bytes()
    assert b"past redis.outage_budget_seconds" in output  # the one clear line
    assert b"Traceback" not in output
    _assert_no_password(output)
