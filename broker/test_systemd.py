#!/usr/bin/env python3
"""test_systemd.py SHMNOTIFYD SHMNOTIFY - the broker under a service manager.

1. Socket activation, as systemd does it: the listening AF_UNIX SOCK_SEQPACKET
   socket is passed as fd 3 with LISTEN_FDS=1 and LISTEN_PID=<the broker's pid>;
   the broker must accept on it (a client publishes and listens through it)
   and must not remove the socket file on SIGTERM (it belongs to the manager).
2. Readiness: with NOTIFY_SOCKET set (a datagram socket, here also in the
   abstract namespace), the broker sends READY=1 (with STATUS= and MAINPID=)
   once it listens, and STOPPING=1 on SIGTERM.
3. With systemd-socket-activate installed, the same through the real tool.
4. With systemd-analyze installed, the unit files (UNITS_DIR: units/system and
   units/user as built) pass `systemd-analyze verify`.
"""
import os, signal, socket, subprocess, sys, tempfile, time, shutil

broker, cli = sys.argv[1], sys.argv[2]
units = sys.argv[3] if len(sys.argv) > 3 else None
tmp = tempfile.mkdtemp(prefix="shn-systemd.")
failures = []
children = []   # pids to kill if a check fails half-way

def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)

def notify_socket(abstract):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    addr = ("\0shn-notify-%d" % os.getpid()) if abstract else os.path.join(tmp, "notify")
    s.bind(addr)
    s.settimeout(10)
    return s, ("@" + addr[1:]) if abstract else addr

def activated_broker(sock_path, notify_addr):
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    lsock.bind(sock_path)
    lsock.listen(16)
    pid = os.fork()
    if pid == 0:   # the child becomes the broker, the way systemd starts it
        os.dup2(lsock.fileno(), 3)
        os.set_inheritable(3, True)
        env = dict(os.environ, LISTEN_FDS="1", LISTEN_PID=str(os.getpid()),
                   NOTIFY_SOCKET=notify_addr)
        env.pop("SHMNOTIFY_SOCKET", None)
        os.execve(broker, [broker, "--socket", os.path.join(tmp, "unused.sock")], env)
    lsock.close()
    children.append(pid)
    return pid

def run(*args, timeout=20):
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout)

try:
    sock = os.path.join(tmp, "act.sock")
    ns, addr = notify_socket(abstract=True)
    pid = activated_broker(sock, addr)
    msg = ns.recv(4096).decode()
    check("READY=1" in msg.split("\n"), "READY=1 through an abstract NOTIFY_SOCKET: %r" % msg)
    check("MAINPID=%d" % pid in msg and "STATUS=listening on " + sock in msg,
          "MAINPID and STATUS name the broker and the activated socket")
    check(not os.path.exists(os.path.join(tmp, "unused.sock")),
          "the broker did not create its own socket when one was passed")
    listener = subprocess.Popen([cli, "listen", "--socket", sock, "--count", "1",
                                 "--timeout", "10000", "act/key"], stdout=subprocess.PIPE, text=True)
    for _ in range(100):
        st = run(cli, "stats", "--socket", sock, "--json")
        if '"subscriptions":1' in st.stdout.replace(" ", ""):
            break
        time.sleep(0.05)
    pub = run(cli, "publish", "--socket", sock, "act/key", "through-fd-3")
    out, _ = listener.communicate(timeout=20)
    check(pub.returncode == 0 and "data=through-fd-3" in out,
          "a notification flows through the passed socket: %r" % out.strip())
    os.kill(pid, signal.SIGTERM)
    msg = ns.recv(4096).decode()
    check("STOPPING=1" in msg.split("\n"), "STOPPING=1 on SIGTERM: %r" % msg)
    _, status = os.waitpid(pid, 0)
    children.remove(pid)
    check(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, "clean exit after SIGTERM")
    check(os.path.exists(sock), "the activated socket file is left to the service manager")

    # a path NOTIFY_SOCKET and a non-activated start
    ns2, addr2 = notify_socket(abstract=False)
    p = subprocess.Popen([broker, "--socket", os.path.join(tmp, "plain.sock")],
                         env=dict(os.environ, NOTIFY_SOCKET=addr2), stderr=subprocess.DEVNULL)
    msg = ns2.recv(4096).decode()
    check("READY=1" in msg.split("\n") and "MAINPID=%d" % p.pid in msg,
          "READY=1 through a path NOTIFY_SOCKET without activation")
    p.terminate(); p.wait(timeout=20)

    tool = shutil.which("systemd-socket-activate")
    if tool:
        sock3 = os.path.join(tmp, "tool.sock")
        act = subprocess.Popen([tool, "--seqpacket", "-l", sock3, broker], stderr=subprocess.PIPE)
        for _ in range(100):
            if os.path.exists(sock3):
                break
            time.sleep(0.05)
        st = run(cli, "stats", "--socket", sock3, "--json")
        check(st.returncode == 0 and '"broker"' in st.stdout,
              "systemd-socket-activate --seqpacket starts the broker on first connection")
        act.terminate(); act.wait(timeout=20)
    else:
        print("skip: systemd-socket-activate is not installed (the test above speaks its protocol)")

    analyze = shutil.which("systemd-analyze")
    if analyze and units:
        for kind, extra in (("system", []), ("user", ["--user"])):
            d = os.path.join(tmp, "units-" + kind)
            os.makedirs(d)
            for name in ("shmnotifyd.socket", "shmnotifyd.service"):
                text = open(os.path.join(units, kind, name)).read()
                # ExecStart must name an existing binary: the one just built
                if "ExecStart=" in text:
                    text = text.replace(
                        os.path.dirname(text.split("ExecStart=")[1].split()[0]),
                        os.path.dirname(os.path.abspath(broker)))
                open(os.path.join(d, name), "w").write(text)
            xdg = os.path.join(tmp, "xdg")
            os.makedirs(xdg, mode=0o700, exist_ok=True)
            r = subprocess.run([analyze] + extra + ["verify", "--man=no", "shmnotifyd.socket",
                                "shmnotifyd.service"], cwd=d, capture_output=True, text=True,
                               env=dict(os.environ, XDG_RUNTIME_DIR=xdg), timeout=60)
            check(r.returncode == 0 and not r.stderr.strip(),
                  "systemd-analyze %s verify of the %s units: %s" %
                  (" ".join(extra), kind, (r.stdout + r.stderr).strip() or "clean"))
    else:
        print("skip: systemd-analyze is not installed (unit files not verified)")
except Exception as e:   # a hang or a crash is a failure, not a stuck test
    failures.append(repr(e))
    print("FAIL: %r" % e, flush=True)
finally:
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    shutil.rmtree(tmp, ignore_errors=True)
sys.exit(1 if failures else 0)
