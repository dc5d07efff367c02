#!/usr/bin/env python3
"""test_log.py SHMNOTIFYD - how the broker decorates its log lines (broker/log.h).

1. Under systemd (JOURNAL_STREAM set), and with stderr no terminal and
   JOURNAL_STREAM unset: every line starts with the sd-daemon(3) priority
   prefix: <6> info, <4> warning, <7> debug, <3> error (a bad configuration
   file, every error of it, with its FILE:LINE).
2. On a terminal (a pty from python's pty module): every line starts with the
   local time, YYYY-MM-DD HH:MM:SS.mmm; with JOURNAL_STREAM set on a
   terminal, the priority prefix instead.
3. --check-config's report stays plain (FILE:LINE: lines), even into a pipe.
"""
import os, pty, re, select, signal, subprocess, sys, tempfile, time, shutil

broker = sys.argv[1]
tmp = tempfile.mkdtemp(prefix="shn-log.")
failures = []

def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)

def env_for(journal):
    env = dict(os.environ)
    for k in ("SHMNOTIFY_SOCKET", "SHMNOTIFY_CONFIG", "JOURNAL_STREAM", "NOTIFY_SOCKET"):
        env.pop(k, None)
    env["XDG_CONFIG_HOME"] = tmp   # no per-user configuration file of the caller
    if journal:
        env["JOURNAL_STREAM"] = "8:123456"
    # a service manager that is not there: the broker warns (<4>) and goes on
    env["NOTIFY_SOCKET"] = os.path.join(tmp, "no-manager")
    return env

def read_until(fd, want, timeout=10):
    """Read fd until want (bytes) appears or timeout; everything read."""
    out = b""
    end = time.monotonic() + timeout
    while want not in out and time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:   # a pty's reader gets EIO once the child is gone
                break
            if not chunk:
                break
            out += chunk
    return out

def run_broker(sock, journal, tty):
    """Start the broker with stderr a pipe or a pty; stop it once it listens.
    Its stderr lines."""
    if tty:
        master, slave = pty.openpty()
        p = subprocess.Popen([broker, "--socket", sock, "--log-level", "debug"],
                             stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                             env=env_for(journal))
        os.close(slave)
        rfd = master
    else:
        rd, wr = os.pipe()
        p = subprocess.Popen([broker, "--socket", sock, "--log-level", "debug"],
                             stdin=subprocess.DEVNULL, stdout=wr, stderr=wr,
                             env=env_for(journal))
        os.close(wr)
        rfd = rd
    out = read_until(rfd, b"cannot tell the service manager")
    p.send_signal(signal.SIGTERM)
    out += read_until(rfd, b"shutting down")
    p.wait(timeout=10)
    os.close(rfd)
    return out.decode(errors="replace").replace("\r\n", "\n").splitlines()

try:
    sock = os.path.join(tmp, "s.sock")
    for journal, what in ((True, "JOURNAL_STREAM set"),
                          (False, "stderr a pipe, JOURNAL_STREAM unset")):
        lines = run_broker(sock, journal, tty=False)
        check(len(lines) >= 3 and all(re.match(r"<[3467]>shmnotifyd: ", l) for l in lines),
              "%s: every line has a <N> priority prefix: %r" % (what, lines))
        check(any(l.startswith("<6>shmnotifyd: listening on " + sock) for l in lines),
              "%s: 'listening' is <6> (info)" % what)
        check(any(l.startswith("<4>shmnotifyd: warning: cannot tell the service manager")
                  for l in lines), "%s: the warning is <4>" % what)
        check(any(l.startswith("<6>shmnotifyd: received SIGTERM") for l in lines),
              "%s: the shutdown line is <6>" % what)

    # a bad file: every error at <3>, each with FILE:LINE
    conf = os.path.join(tmp, "bad.conf")
    with open(conf, "w") as f:
        f.write("[broker]\nio = sideways\n[limits]\nmax-ports = many\n")
    r = subprocess.run([broker, "--socket", sock, "--config", conf], capture_output=True,
                       text=True, timeout=20, env=env_for(True))
    err = r.stderr.splitlines()
    check(r.returncode == 2 and
          "<3>shmnotifyd: %s:2: io 'sideways'" % conf in r.stderr and
          "<3>shmnotifyd: %s:4: max-ports 'many'" % conf in r.stderr and
          all(l.startswith("<3>") for l in err),
          "a bad configuration file: exit 2, every error <3> with FILE:LINE: %r" % err)

    # --check-config reads as plain FILE:LINE: lines, even into a pipe
    r = subprocess.run([broker, "--check-config", conf], capture_output=True, text=True,
                       timeout=20, env=env_for(True))
    check(r.returncode == 2 and r.stderr.startswith("shmnotifyd: %s:2: " % conf) and
          "<" not in r.stderr.split(":")[0], "--check-config stays plain: %r" % r.stderr)

    # on a terminal: timestamps
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} shmnotifyd: "
    lines = run_broker(sock, journal=False, tty=True)
    check(len(lines) >= 3 and all(re.match(stamp, l) for l in lines),
          "a terminal: every line starts with a timestamp: %r" % lines)
    check(any(re.match(stamp + "listening on ", l) for l in lines) and
          any(re.match(stamp + "warning: cannot tell", l) for l in lines),
          "a terminal: the level's word is kept after the timestamp")
    # a terminal under systemd (StandardError=tty with the journal set up): the prefix
    lines = run_broker(sock, journal=True, tty=True)
    check(len(lines) >= 3 and all(re.match(r"<[3467]>shmnotifyd: ", l) for l in lines),
          "a terminal with JOURNAL_STREAM set: <N> prefixes: %r" % lines)
finally:
    shutil.rmtree(tmp, ignore_errors=True)

if failures:
    print("test_log: %d check(s) failed" % len(failures))
    sys.exit(1)
print("test_log: all checks passed")
